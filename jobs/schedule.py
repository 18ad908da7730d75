"""The jobs app's periodic work, which the site's clock (``manage.py scheduler``) calls on every tick.

- a sync pass per enabled cluster every Cluster.sync_interval seconds (EASYAI_LOCAL_SYNC_INTERVAL for
  local clusters, EASYAI_SYNC_INTERVAL for Kubernetes, or the cluster's settings.sync_interval);
- submits that are due (new jobs whose enqueue was missed, retries after back-off, jobs waiting for quota);
- timeouts;
- stops the backend failed, again after their back-off, until the backend confirms them;
- cleanups of finished jobs' backend records once kept as long as their cluster keeps them
  (its settings.keep_finished_minutes; else at once on Kubernetes and EASYAI_CLEANUP_AFTER locally), and
  not while a failed task is held for debugging;
- the end of holds whose time ran out (the spec's ``debug``), every few seconds.

Offered to the clock by ``JobsConfig.ready()``; nothing here runs work itself: it enqueues django-q2 tasks.
"""

from __future__ import annotations

import time

from django.core.cache import cache
from django_q.tasks import async_task

from clusters.models import Cluster
from jobs import workers
from jobs.models import Job
from jobs.state import HOLDS_RESOURCES

# How often the slower scans run, in seconds; sync passes follow each cluster's own interval.
SCAN_EVERY = {"submits": 0.5, "stops": 1.0, "timeouts": 1.0, "holds": 5.0}


def enqueue_due(last: dict) -> None:
    """Enqueue what is due. ``last`` keeps when each thing was last enqueued (monotonic seconds)."""
    now = time.monotonic()
    # Only clusters with active jobs need a pass: an idle portal leaves its database alone.
    busy = set(Job.objects.filter(state__in=HOLDS_RESOURCES).order_by().values_list("cluster_id", flat=True).distinct())
    for cluster in Cluster.objects.filter(enabled=True, pk__in=busy).only("pk", "kind", "settings"):
        if cache.get(f"easyai:sync-backoff:{cluster.pk}"):
            continue  # its last pass failed: wait out the back-off
        # One pass in the queue per cluster at a time: a slow pass is not piled up behind.
        if now - last.get(("sync", cluster.pk), 0) >= cluster.sync_interval and cache.add(
            f"easyai:sync-queued:{cluster.pk}", 1, timeout=max(10, 20 * cluster.sync_interval)
        ):
            last[("sync", cluster.pk)] = now
            async_task("jobs.tasks.sync_cluster", cluster.pk, group=f"sync-{cluster.pk}")
    if now - last.get("submits", 0) >= SCAN_EVERY["submits"]:
        last["submits"] = now
        for job_pk in workers.submits_due():
            async_task("jobs.tasks.submit_job", job_pk)
    if now - last.get("stops", 0) >= SCAN_EVERY["stops"]:
        last["stops"] = now
        for job_pk in workers.stops_due():
            async_task("jobs.tasks.stop_on_backend", job_pk)
    if now - last.get("timeouts", 0) >= SCAN_EVERY["timeouts"]:
        last["timeouts"] = now
        for job_pk in workers.jobs_timed_out():
            async_task("jobs.tasks.timeout_job", job_pk)
    if now - last.get("holds", 0) >= SCAN_EVERY["holds"]:
        last["holds"] = now
        for job_pk in workers.holds_run_out():
            async_task("jobs.tasks.end_hold", job_pk)
    # Cleanups are not urgent: looked for once a minute.
    if cache.add("easyai:cleanup-scan", 1, timeout=60):
        for job_pk in workers.cleanups_due():
            async_task("jobs.tasks.cleanup_job", job_pk)
