"""The apps' scheduled steps: idle apps sleep, runs that never answer their health check fail.

The scheduler's tick calls ``enqueue_due``; it enqueues one ``scan`` at most every SCAN_EVERY_S seconds (a
cache mark, so several schedulers do not pile scans up). Each step is idempotent: a second worker finds the
app already asleep or failed and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from apps import services
from apps.models import App, AppStatus
from jobs.state import ACTIVE, FINAL, JobState

log = logging.getLogger(__name__)

SCAN_EVERY_S = 10


def access_key(app_pk: int) -> str:
    """Cache key of the last time the proxy served a request of this app (a UNIX time)."""
    return f"easyai:app-request:{app_pk}"


def enqueue_due(last: dict) -> bool:
    """The clock's periodic work (``AppsConfig.ready()``): a scan at most every SCAN_EVERY_S seconds."""
    if not cache.add("easyai:apps-scan", 1, timeout=SCAN_EVERY_S):
        return False
    from django_q.tasks import async_task

    async_task("apps.tasks.scan")
    return True


def last_request(app: App) -> datetime | None:
    """The later of what the proxy noted in the cache and what is on the row."""
    seen = cache.get(access_key(app.pk))
    noted = datetime.fromtimestamp(seen, tz=UTC) if isinstance(seen, int | float) else None
    times = [t for t in (noted, app.last_request_at) if t is not None]
    return max(times) if times else None


def scan(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    slept = failed = ended = 0
    running = App.objects.filter(job__state__in=ACTIVE).select_related("job", "team", "cluster").prefetch_related(
        "job__tasks"
    )
    for app in running:
        seen = last_request(app)
        if seen is not None and (app.last_request_at is None or seen > app.last_request_at):
            services.record_request(app.pk, seen)
        if app.job.state == JobState.RUNNING and not app.ready:
            if services.app_fail_unhealthy(app=app, now=now):
                failed += 1
            continue
        if app.status != AppStatus.ACTIVE or not app.idle_minutes or app.job.state != JobState.RUNNING:
            continue
        since = max(t for t in (seen, app.run_requested_at, app.job.started_at) if t is not None)
        if now - since >= timedelta(minutes=app.idle_minutes) and services.app_sleep(app=app, now=now):
            slept += 1
    # Runs that ended on their own since the last scan: the app says why, with its log's last lines.
    for app in App.objects.filter(status=AppStatus.ACTIVE, job__state__in=FINAL, message="").select_related("job"):
        ended += services.app_run_ended(app=app)
    return {"slept": slept, "failed": failed, "ended": ended}
