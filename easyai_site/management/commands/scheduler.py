"""The site's clock: every tick, call each app's periodic work, which enqueues what is due to the django-q2 workers.

Each app offers its periodic work in its ``AppConfig.ready()`` as ``periodic_work``, a sequence of
callables taking the clock's ``last`` dict (when each thing was last enqueued, monotonic seconds; each
app keys its own entries). The clock names no app: ``jobs/schedule.py`` (sync passes, submits, stops,
timeouts, cleanups), ``notebooks/schedule.py`` (leases and idle servers), and any later app's.

django-q2's own schedules count in minutes; the sync cadence is seconds, so this small loop does it.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import close_old_connections

log = logging.getLogger(__name__)

PeriodicWork = Callable[[dict], None]


def periodic_work() -> list[tuple[str, PeriodicWork]]:
    """Every app's periodic work, in INSTALLED_APPS order: (app label, callable)."""
    return [(config.label, work) for config in apps.get_app_configs() for work in getattr(config, "periodic_work", ())]


class Command(BaseCommand):
    help = "Enqueue each app's periodic work (sync passes, due submits, stop retries, timeouts, cleanups, idle scans)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one tick, then exit")

    def handle(self, *args, **options):
        running = True

        def stop(signum, frame):
            nonlocal running
            running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        last: dict = {}
        while running:
            close_old_connections()
            try:
                tick(last)
            except Exception as exc:  # a database hiccup must not end the scheduler
                self.stderr.write(f"scheduler tick failed: {exc}")
            if options["once"]:
                break
            time.sleep(0.1)  # the fastest cadence a cluster may ask for


def tick(last: dict) -> None:
    """One round: every app enqueues what is due. ``last`` keeps when each thing was last enqueued."""
    for _label, work in periodic_work():
        work(last)
