"""The serving app's periodic work for the site's clock: a settle pass per cluster that has live services.

Locally a revision's readiness comes from the jobs app's own pass (its endpoint readiness); this pass turns it
into which revision serves. On Kubernetes it reads every InferenceService of the cluster in one list call.
"""

from __future__ import annotations

import time

from django.core.cache import cache

from clusters.models import Cluster
from serving import runtime
from serving.models import InferenceService

EVERY_S = 1.0  # at most; a Kubernetes cluster's own sync interval when longer


def enqueue_due(last: dict) -> None:
    now = time.monotonic()
    live = set(InferenceService.objects.order_by().values_list("cluster_id", flat=True).distinct())
    for cluster in Cluster.objects.filter(enabled=True, pk__in=live).only("pk", "kind", "settings"):
        every = EVERY_S if runtime.is_local(cluster) else max(EVERY_S, cluster.sync_interval)
        if now - last.get(("serving", cluster.pk), 0) >= every and cache.add(
            f"easyai:serving-sync-queued:{cluster.pk}", 1, timeout=max(10, 20 * every)
        ):
            last[("serving", cluster.pk)] = now
            runtime.enqueue("serving.tasks.services_sync", cluster.pk)
