"""django-q2 task functions of the monitoring app: thin and idempotent; each takes ids and calls a step."""

from __future__ import annotations

from django.core.cache import cache

from clusters.models import Cluster
from monitoring import retention, sampler


def sample_cluster(cluster_pk: int) -> dict | None:
    cache.delete(f"easyai:usage-queued:{cluster_pk}")
    cluster = Cluster.objects.filter(pk=cluster_pk, enabled=True).first()
    if cluster is None:
        return None
    return sampler.sample_cluster(cluster)


def downsample() -> dict:
    return retention.downsample()
