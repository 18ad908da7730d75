"""Holds of failed tasks (the spec's ``debug``): what a sync pass reads of them, and their end when they run out.

A backend reports a held task as it is (its command failed, ``TaskObservation.held`` says how, ``held_until``
until when); the job's record follows: ``keep_failed`` fails the job as usual with its tasks kept (their cleanup
waits), ``pause_on_failure`` keeps the job running, shown as failed and held. A hold ends when its owner releases
it (``jobs.services.job_release_hold``) or its time runs out (``hold_end``, from the clock's scan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from clusters.backends.base import JobObservation
from jobs.models import Job, JobEvent
from jobs.state import FINAL, HOLD_MODES, HOLD_RELEASED
from jobs.workers.cleanup import cleanup_if_due

log = logging.getLogger(__name__)

HOLD_EXPIRED = "hold_expired"  # the reason of the trail entry when a hold ran out


@dataclass(frozen=True)
class Hold:
    mode: str
    until: datetime | None  # None when the backend did not say: the spec's time from now
    task: str  # the first held task's name
    exit_code: int | None


def hold_in(observation: JobObservation) -> Hold | None:
    """The hold an observation reports: the first held task's mode, the latest time any task is held until."""
    held = [t for t in observation.tasks if t.held in HOLD_MODES]
    if not held:
        return None
    untils = [t.held_until for t in held if t.held_until is not None]
    first = held[0]
    return Hold(first.held, max(untils) if untils else None, f"{first.role}-{first.index}", first.exit_code)


def hold_record(job: Job, hold: Hold | None, now: datetime) -> bool:
    """Bring the job's held fields in line with what its tasks report; True when a hold is recorded for it now.

    A compare-and-set on the fields read with the job, so a release or an expiry written meanwhile is not undone.
    A hold that was released or ran out is not recorded again while the backend still reports it (the task is
    ending), nor one whose time has passed."""
    if hold is None:
        if job.held_until is not None and job.state not in FINAL:
            # The held task ended (released on the cluster, or its time ran out there): nothing is held now.
            Job.objects.filter(pk=job.pk, held_until=job.held_until).update(held_until=None, held_mode="")
            job.held_until, job.held_mode = None, ""
        return False
    until = hold.until
    if until is None:
        from jobs.spec import toolbox

        spec = Job.objects.filter(pk=job.pk).values_list("spec", flat=True).first() or {}
        until = now + timedelta(seconds=toolbox.hold_of(spec)[1])
    if until <= now:
        return False
    if job.held_until == until and job.held_mode == hold.mode:
        return True
    if job.held_until is None and JobEvent.objects.filter(job=job, reason__in=(HOLD_RELEASED, HOLD_EXPIRED)).exists():
        return False  # released (or run out) already: the task is on its way out
    if not Job.objects.filter(pk=job.pk, state=job.state, held_until=job.held_until).update(
        held_until=until, held_mode=hold.mode
    ):
        return False
    job.held_until, job.held_mode = until, hold.mode
    return True


def until_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hold_end(job_pk: int) -> bool:
    """End a hold whose time has run out: the backend ends the held tasks, the fields are cleared with a trail
    entry, and a finished job's cleanup follows. Idempotent; True when this call ended it."""
    from clusters.backends.base import BackendError

    now = timezone.now()
    job = Job.objects.select_related("cluster").filter(pk=job_pk, held_until__lte=now).first()
    if job is None:
        return False
    backend = job.cluster.backend()
    if hasattr(backend, "release_hold"):  # a backend without holds (no DebugBackend) has none to end
        # The task's own deadline ends it too; asking makes the portal's deadline the one that counts.
        try:
            backend.release_hold(job.public_id)
        except BackendError as exc:
            log.warning("ending the hold of %s on its cluster failed: %s", job.public_id, exc)
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, held_until=job.held_until).update(held_until=None, held_mode=""):
            return False
        JobEvent.objects.create(
            job=job, from_state=job.state, to_state=job.state, reason=HOLD_EXPIRED,
            message=f"The hold ({job.held_mode}) ran out at {until_text(job.held_until)}.",
        )  # fmt: skip
        if job.state in FINAL:
            transaction.on_commit(lambda: cleanup_if_due(job.pk))
    return True
