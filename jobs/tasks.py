"""django-q2 task functions: thin and idempotent; each takes ids, reloads rows and calls a service."""

from __future__ import annotations

from django.core.cache import cache

from clusters.models import Cluster
from jobs import notify as notifications
from jobs import workers


def submit_job(job_pk: int) -> None:
    workers.job_submit_to_backend(job_pk)


def sync_cluster(cluster_pk: int) -> dict | None:
    cache.delete(f"easyai:sync-queued:{cluster_pk}")
    cluster = Cluster.objects.filter(pk=cluster_pk, enabled=True).first()
    return workers.cluster_sync(cluster) if cluster else None


def stop_on_backend(job_pk: int) -> None:
    workers.job_stop_on_backend(job_pk)


def timeout_job(job_pk: int) -> None:
    workers.job_timeout(job_pk)


def retry_job(job_pk: int) -> None:
    workers.job_retry(job_pk)


def notify(event_pk: int) -> None:
    notifications.send_for_event(event_pk)
