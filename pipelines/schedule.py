"""Pipelines' clock work and schedules.

The site's clock calls ``enqueue_due`` every tick (``PipelinesConfig.ready()``): while any run is active, or a
schedule is due, it enqueues one engine tick (``pipelines.tasks.advance``) at a time: a cache mark is the
lease, dropped when the tick ends, so ticks never pile up and a killed worker holds nothing up for longer than
the mark's timeout.

A schedule (``models.Schedule``) makes a run of its pipeline's latest version at each time of its cron
expression in its timezone (croniter). Times missed while the portal was down are made on the next tick when
``catch_up`` is on, the latest ``catch_up_limit`` of them, else only the latest; ``concurrency`` says what a
time does while earlier runs are active: ``allow`` (queued; they start while fewer than ``max_active`` run),
``forbid`` (no run for that time) or ``replace`` (the active runs are stopped). One run per time: the run's
(schedule, scheduled_for) is unique, so a tick delivered twice makes nothing twice.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone
from django.utils.translation import gettext as _

from pipelines.models import RUN_ACTIVE, Concurrency, PipelineRun, RunState, Schedule

log = logging.getLogger(__name__)

TICK_EVERY = 0.25  # seconds between engine ticks while runs are active
LEASE_S = 30  # an engine tick's lease: how long a killed worker can hold the next one up
ADVANCE_KEY = "easyai:pipelines-advance"
AGAIN_KEY = "easyai:pipelines-advance-again"
MAX_ROUNDS = 3  # a tick asked for again while it ran goes round at most this many times
MAX_BACKFILL = 1000
FIELDS = ("name", "cron", "timezone", "params", "concurrency", "max_active", "catch_up", "catch_up_limit", "paused")


def enqueue_advance() -> bool:
    """One engine tick in the queue, unless one is queued or running already: then that one goes round once more
    when it ends (what it read may be older than what asked now)."""
    if not cache.add(ADVANCE_KEY, 1, timeout=LEASE_S):
        cache.set(AGAIN_KEY, 1, timeout=LEASE_S)
        return False
    from django_q.tasks import async_task

    async_task("pipelines.tasks.advance")
    return True


def release_advance() -> None:
    cache.delete(ADVANCE_KEY)


def enqueue_due(last: dict) -> bool:
    """The clock's periodic work: an engine tick when a run is active or a schedule is due."""
    now = time.monotonic()
    if now - last.get("pipelines", 0) < TICK_EVERY:
        return False
    last["pipelines"] = now
    busy = (
        PipelineRun.objects.filter(state__in=RUN_ACTIVE).exists()
        or Schedule.objects.filter(paused=False, next_time__lte=timezone.now()).exists()
    )
    return busy and enqueue_advance()


def after_sync_pass(sender, *, moved: int = 0, **kwargs) -> None:
    """``jobs.signals.sync_pass_finished``: a pass that moved jobs may have ended a step's job: tick now, so its
    successor starts without waiting for the clock's next look."""
    if moved and PipelineRun.objects.filter(state__in=RUN_ACTIVE).exists():
        enqueue_advance()


# --- cron -------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_cron(cron: str, zone: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        _zone(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = [_("No timezone %(zone)r (use names such as UTC or Asia/Shanghai).") % {"zone": zone}]
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        errors["cron"] = [_("%(cron)r is not a cron expression such as '0 3 * * *'.") % {"cron": cron}]
    return errors


def next_after(schedule: Schedule, after: datetime) -> datetime:
    """The schedule's first time after ``after`` (UTC)."""
    zone = _zone(schedule.timezone)
    return croniter(schedule.cron, after.astimezone(zone)).get_next(datetime).astimezone(UTC)


def times_between(
    schedule: Schedule, start: datetime, end: datetime, *, limit: int, inclusive: bool = False
) -> list[datetime]:
    """The schedule's times in (start, end] ([start, end] when inclusive), at most ``limit`` (the earliest)."""
    zone = _zone(schedule.timezone)
    begin = start - timedelta(seconds=1) if inclusive else start
    times: list[datetime] = []
    try:
        walker = croniter(schedule.cron, begin.astimezone(zone))
        while len(times) < limit:
            when = walker.get_next(datetime).astimezone(UTC)
            if when > end:
                break
            times.append(when)
    except (CroniterBadDateError, CroniterBadCronError, CroniterNotAlphaError):
        pass
    return times


def clean(data: dict, *, pipeline, partial: bool = False) -> dict:
    """A schedule's fields from a form or the API; ValidationError names each bad one, nothing is changed."""
    if not isinstance(data, dict):
        raise ValidationError({"schedule": [_("must be a mapping of fields")]})
    errors: dict[str, list[str]] = {}
    unknown = [key for key in data if key not in FIELDS]
    for key in unknown:
        errors[str(key)] = [_("unknown field")]
    values: dict = {}
    if not partial:
        for key in ("name", "cron"):
            if not data.get(key):
                errors[key] = [_("required")]
    if "name" in data:
        import re

        if not isinstance(data["name"], str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", data["name"]):
            errors["name"] = [_("must be lowercase letters, digits and '-', at most 40")]
        else:
            values["name"] = data["name"]
    cron = data.get("cron")
    zone = data.get("timezone")
    if cron is not None or zone is not None:
        problems = check_cron(cron if cron is not None else "0 0 * * *", zone if zone is not None else "UTC")
        errors.update(problems)
        if cron is not None and "cron" not in problems:
            values["cron"] = cron
        if zone is not None and "timezone" not in problems:
            values["timezone"] = zone
    if "params" in data:
        from pipelines.services import resolve_params

        version = pipeline.versions.order_by("-number").first()
        try:
            resolve_params(version.spec if version else {}, data["params"])
            values["params"] = data["params"] or {}
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "concurrency" in data:
        if data["concurrency"] not in Concurrency.values:
            errors["concurrency"] = [_("must be one of %(choices)s") % {"choices": ", ".join(Concurrency.values)}]
        else:
            values["concurrency"] = data["concurrency"]
    for key, low, high in (("max_active", 1, 100), ("catch_up_limit", 0, 1000)):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[key] = [_("must be a whole number from %(low)d to %(high)d") % {"low": low, "high": high}]
            else:
                values[key] = value
    for key in ("catch_up", "paused"):
        if key in data:
            if not isinstance(data[key], bool):
                errors[key] = [_("must be true or false")]
            else:
                values[key] = data[key]
    if errors:
        raise ValidationError(errors)
    return values


# --- making runs ------------------------------------------------------------------------


def make_run(schedule: Schedule, when: datetime, *, user=None) -> PipelineRun:
    """The run of one of the schedule's times (IntegrityError when that time has its run)."""
    from pipelines.services import run_submit

    params = dict(schedule.params or {})
    return run_submit(
        user=user or schedule.owner, pipeline=schedule.pipeline, params=params, schedule=schedule, scheduled_for=when
    )


def run_schedules(now: datetime | None = None) -> int:
    """Make the runs of every due schedule; how many were made."""
    from pipelines.services import run_stop

    now = now or timezone.now()
    made = 0
    for schedule in Schedule.objects.filter(paused=False, next_time__lte=now).select_related("pipeline", "owner"):
        start = schedule.last_time or (schedule.next_time - timedelta(seconds=1))
        due = times_between(schedule, start, now, limit=100_000)
        if not due:
            Schedule.objects.filter(pk=schedule.pk).update(next_time=next_after(schedule, now))
            continue
        keep = max(1, schedule.catch_up_limit) if schedule.catch_up else 1
        missed = len(due) - keep
        due = due[-keep:]
        message = _("%(n)d missed times not made") % {"n": missed} if missed > 0 else ""
        for when in due:
            active = list(PipelineRun.objects.filter(schedule=schedule, state__in=RUN_ACTIVE))
            if active and schedule.concurrency == Concurrency.FORBID:
                message = _("%(time)s: not made, a run is still active (forbid)") % {"time": when.isoformat()}
                continue
            if active and schedule.concurrency == Concurrency.REPLACE:
                for run in active:
                    if not run.stop_requested:
                        run_stop(run=run)
            try:
                make_run(schedule, when)
                made += 1
            except IntegrityError:
                continue  # a tick delivered twice: that time has its run
            except (ValidationError, Exception) as exc:  # the pipeline's params or team changed: say so, go on
                message = _("%(time)s: no run: %(error)s") % {"time": when.isoformat(), "error": exc}
                log.warning("schedule %s: %s", schedule.pk, message)
        Schedule.objects.filter(pk=schedule.pk).update(
            last_time=due[-1], next_time=next_after(schedule, max(now, due[-1])), message=message[:300]
        )
    return made


__all__ = [
    "MAX_BACKFILL",
    "RunState",
    "check_cron",
    "clean",
    "enqueue_advance",
    "enqueue_due",
    "make_run",
    "next_after",
    "run_schedules",
    "times_between",
]
