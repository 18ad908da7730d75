"""The alerts pass as the site's clock runs it: ``enqueue_due`` (periodic work) enqueues ``scan_alerts`` every
EASYAI_ALERT_SCAN_SECONDS, one in the queue at a time; a django-q2 worker runs it (monitoring/alerts.py)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django_q.tasks import async_task

QUEUED_KEY = "easyai:alerts-queued"


def enqueue_due(last: dict) -> None:
    now = time.monotonic()
    every = settings.EASYAI_ALERT_SCAN_SECONDS
    if now - last.get("alerts", 0) < every:
        return
    # A slow pass is not piled up behind: the mark lasts until the pass begins (or long enough to be lost).
    if cache.add(QUEUED_KEY, 1, timeout=max(60, 10 * every)):
        last["alerts"] = now
        async_task("monitoring.alert_tasks.scan_alerts", task_name="alerts")


def scan_alerts() -> dict[str, int]:
    from monitoring import alerts

    cache.delete(QUEUED_KEY)
    return alerts.scan()
