"""The monitoring app's periodic work for the site's clock: sampling passes and retention.

- a sampling pass per cluster with running tasks every EASYAI_USAGE_SAMPLE_SECONDS, one in the queue per
  cluster at a time (a slow pass is not piled up behind);
- a retention pass (downsampling) every EASYAI_USAGE_RETENTION_SECONDS, one for all the portal's clocks.

Offered to the clock by ``MonitoringConfig.ready()``; nothing here runs work itself: it enqueues django-q2 tasks.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django_q.tasks import async_task

from jobs.models import Task
from jobs.state import HOLDS_RESOURCES


def enqueue_due(last: dict) -> None:
    now = time.monotonic()
    interval = settings.EASYAI_USAGE_SAMPLE_SECONDS
    if now - last.get(("monitoring", "sample"), 0) >= interval:
        last[("monitoring", "sample")] = now
        busy = (
            Task.objects.filter(state=Task.State.RUNNING, job__state__in=HOLDS_RESOURCES)
            .order_by()
            .values_list("job__cluster_id", flat=True)
            .distinct()
        )
        for cluster_pk in busy:
            if cache.add(f"easyai:usage-queued:{cluster_pk}", 1, timeout=max(30, 6 * interval)):
                async_task("monitoring.tasks.sample_cluster", cluster_pk, group=f"usage-{cluster_pk}")
    if cache.add("easyai:usage-retention", 1, timeout=settings.EASYAI_USAGE_RETENTION_SECONDS):
        async_task("monitoring.tasks.downsample")
