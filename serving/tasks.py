"""django-q2 task functions of the serving app: thin, idempotent, they take ids and call a step."""

from __future__ import annotations

from clusters.models import Cluster
from serving import runtime, services


def revision_start(revision_pk: int) -> None:
    runtime.start(revision_pk)


def service_apply(service_pk: int) -> None:
    runtime.apply(service_pk)


def service_roll(service_pk: int) -> None:
    services.service_roll(service_pk)


def service_remove(cluster_pk: int, team: str, name: str) -> None:
    runtime.remove(cluster_pk, team, name)


def services_sync(cluster_pk: int) -> int:
    from django.core.cache import cache

    cache.delete(f"easyai:serving-sync-queued:{cluster_pk}")
    cluster = Cluster.objects.filter(pk=cluster_pk).first()
    return runtime.sync_cluster(cluster) if cluster is not None else 0
