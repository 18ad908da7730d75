"""The scheduler: every tick, enqueue the work that is due to the django-q2 workers.

- a sync pass per enabled cluster every EASYAI_SYNC_INTERVAL seconds;
- submits that are due (new jobs whose enqueue was missed, retries after back-off, jobs waiting for quota);
- timeouts;
- cleanups of finished jobs' backend records after EASYAI_CLEANUP_AFTER.

django-q2's own schedules count in minutes; the sync cadence is seconds, so this small loop does it.
"""

import signal
import time

from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django_q.tasks import async_task

from clusters.models import Cluster
from jobs import workers
from notebooks import workers as notebook_workers


class Command(BaseCommand):
    help = "Enqueue cluster sync passes, due submits and timeouts for the workers."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one tick, then exit")

    def handle(self, *args, **options):
        running = True

        def stop(signum, frame):
            nonlocal running
            running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        last_sync: dict[int, float] = {}
        while running:
            close_old_connections()
            try:
                tick(last_sync)
            except Exception as exc:  # a database hiccup must not end the scheduler
                self.stderr.write(f"scheduler tick failed: {exc}")
            if options["once"]:
                break
            time.sleep(min(0.5, settings.EASYAI_SYNC_INTERVAL))


def tick(last_sync: dict[int, float]) -> None:
    now = time.monotonic()
    for cluster_pk in Cluster.objects.filter(enabled=True).values_list("pk", flat=True):
        # One pass in the queue per cluster at a time: a slow pass is not piled up behind.
        if cache.get(f"easyai:sync-backoff:{cluster_pk}"):
            continue  # its last pass failed: wait out the back-off
        if now - last_sync.get(cluster_pk, 0) >= settings.EASYAI_SYNC_INTERVAL and cache.add(
            f"easyai:sync-queued:{cluster_pk}", 1, timeout=120
        ):
            last_sync[cluster_pk] = now
            async_task("jobs.tasks.sync_cluster", cluster_pk, group=f"sync-{cluster_pk}")
    for job_pk in workers.submits_due():
        async_task("jobs.tasks.submit_job", job_pk)
    for job_pk in workers.jobs_timed_out():
        async_task("jobs.tasks.timeout_job", job_pk)
    notebook_workers.enqueue_due()  # leases, idle notebooks and TensorBoards: a scan every ~30 s
    # Cleanups are not urgent: looked for once a minute.
    if cache.add("easyai:cleanup-scan", 1, timeout=60):
        for job_pk in workers.cleanups_due():
            async_task("jobs.tasks.cleanup_job", job_pk)
