"""Bring jobs' accounting up to date now: one pass as the clock runs it, or every job since a day (a backfill)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs.models import Job
from monitoring import accounting


class Command(BaseCommand):
    help = (
        "Account jobs' usage and cost now: one pass (the jobs that run or just ended), or with --since every job "
        "created since that day (the jobs that ran before the monitoring app was installed, or after a long stop)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="account every job created since this day")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["since"]:
            written = accounting.account_pass()
            self.stdout.write(f"{written} jobs accounted")
            return
        try:
            day = date.fromisoformat(options["since"])
        except ValueError:
            raise CommandError(f"--since: {options['since']!r} is not a date (YYYY-MM-DD)") from None
        since = timezone.make_aware(datetime.combine(day, time.min))
        ids = Job.objects.filter(created_at__gte=since).order_by("pk").values_list("pk", flat=True)
        written = accounting.account_jobs(ids.iterator(chunk_size=accounting.CHUNK))
        self.stdout.write(f"{written} jobs accounted since {day.isoformat()}")
