"""The job state machine: states, inputs, and the allowed transitions as data.

Pure: nothing here touches the database. ``jobs.services.job_transition`` is
the one writer that applies a transition (a compare-and-set plus a JobEvent),
and the sync loop and the actions are its only callers.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobState(models.TextChoices):
    QUEUED = "queued", _("queued")  # recorded, waiting for the submit worker
    UNKNOWN = "unknown", _("unknown")  # submitted, the backend has not reported it yet
    PENDING = "pending", _("pending")  # created on the backend, waiting for resources or starting
    RUNNING = "running", _("running")  # at least one task runs
    SUCCESS = "success", _("success")  # every task that decides the outcome ended well
    FAILED = "failed", _("failed")  # a task failed, the backend refused it, or its objects vanished
    STOPPED = "stopped", _("stopped")  # stopped by a user, an admin, a timeout or preemption


INITIAL = frozenset({JobState.QUEUED, JobState.UNKNOWN})
ACTIVE = frozenset({JobState.QUEUED, JobState.UNKNOWN, JobState.PENDING, JobState.RUNNING})
FINAL = frozenset({JobState.SUCCESS, JobState.FAILED, JobState.STOPPED})
STOPPABLE = ACTIVE
# States in which a job holds resources on its backend: submitted and not ended. A queued job holds
# nothing yet; an unknown one was handed to the backend, which may already have placed it. The team's
# quota usage, the sync pass and the scheduler's "busy cluster" test all count exactly these.
HOLDS_RESOURCES = frozenset({JobState.UNKNOWN, JobState.PENDING, JobState.RUNNING})


class Input(models.TextChoices):
    """What can happen to a job: user/admin actions and backend observations."""

    START = "start", _("start")  # the submit worker handed the job to its backend
    STOP = "stop", _("stop")  # a user or admin asked to stop it
    TIMEOUT = "timeout", _("timeout")  # it ran past its spec's timeout
    OBSERVED_PENDING = "observed_pending", _("observed pending")
    OBSERVED_RUNNING = "observed_running", _("observed running")
    OBSERVED_SUCCEEDED = "observed_succeeded", _("observed succeeded")
    OBSERVED_FAILED = "observed_failed", _("observed failed")
    OBSERVED_STOPPED = "observed_stopped", _("observed stopped")  # ended by the backend (preemption)
    OBSERVED_MISSING = "observed_missing", _("observed missing")  # its backend objects vanished (reaper)
    REJECTED = "rejected", _("rejected")  # the backend refused the job for good


S = JobState
# input -> (the states it may leave, the state it enters)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    Input.START: (frozenset({S.QUEUED, S.UNKNOWN}), S.PENDING),
    Input.OBSERVED_PENDING: (frozenset({S.QUEUED, S.UNKNOWN}), S.PENDING),
    Input.OBSERVED_RUNNING: (frozenset({S.QUEUED, S.UNKNOWN, S.PENDING}), S.RUNNING),
    Input.OBSERVED_SUCCEEDED: (frozenset({S.PENDING, S.RUNNING}), S.SUCCESS),
    Input.OBSERVED_FAILED: (frozenset({S.PENDING, S.RUNNING}), S.FAILED),
    Input.OBSERVED_MISSING: (frozenset({S.UNKNOWN, S.PENDING, S.RUNNING}), S.FAILED),
    Input.REJECTED: (frozenset({S.QUEUED, S.UNKNOWN, S.PENDING}), S.FAILED),
    Input.STOP: (STOPPABLE, S.STOPPED),
    Input.TIMEOUT: (STOPPABLE, S.STOPPED),
    Input.OBSERVED_STOPPED: (STOPPABLE, S.STOPPED),
}

# The reason recorded when an input carries none of its own.
DEFAULT_REASON: dict[str, str] = {
    Input.START: "submitted",
    Input.STOP: "stopped",
    Input.TIMEOUT: "timeout",
    Input.OBSERVED_PENDING: "created",
    Input.OBSERVED_RUNNING: "running",
    Input.OBSERVED_SUCCEEDED: "succeeded",
    Input.OBSERVED_FAILED: "failed",
    Input.OBSERVED_STOPPED: "stopped",
    Input.OBSERVED_MISSING: "missing",
    Input.REJECTED: "rejected",
}


def allowed_from(event: str) -> frozenset[str]:
    return TRANSITIONS[event][0]


def next_state(current: str, event: str) -> str | None:
    """The state the input leads to from ``current``, or None when the table refuses it."""
    sources, target = TRANSITIONS[event]
    return target if current in sources else None


# Observations that a job ended on the backend.
ENDED_OBSERVATIONS = frozenset({Input.OBSERVED_SUCCEEDED, Input.OBSERVED_FAILED, Input.OBSERVED_STOPPED})


def path(current: str, event: str, *, ran: bool = False) -> list[str]:
    """The inputs to apply, in order, so an observation lands even when an earlier one was missed.

    A job that finished between two sync passes is seen as ended while the
    record still says queued/unknown/pending. It passes through the states it
    went through, so the record shows each: through pending when it was never
    seen created, and through running when ``ran`` (its tasks report that they
    started) but no pass saw it run. Returns [] when the input is refused.
    """
    if ran and event in ENDED_OBSERVATIONS and current in INITIAL | {JobState.PENDING}:
        before = [Input.OBSERVED_PENDING] if current in INITIAL else []
        return [*before, Input.OBSERVED_RUNNING, event]
    if next_state(current, event) is not None:
        return [event]
    if current in INITIAL and event in {Input.OBSERVED_SUCCEEDED, Input.OBSERVED_FAILED}:
        return [Input.OBSERVED_PENDING, event]
    return []


def is_final(state: str) -> bool:
    return state in FINAL


# --- holds (the spec's ``debug``) ------------------------------------------------------------------------------

# How a failed task is kept to look at. keep_failed: the job fails as usual and its tasks stay (their cleanup
# waits for the hold to end); pause_on_failure: the failing task holds, so the job stays running, shown as
# HELD_LABEL, until the hold is released or runs out and the task ends with its command's status.
KEEP_FAILED = "keep_failed"
PAUSE_ON_FAILURE = "pause_on_failure"
HOLD_MODES = (KEEP_FAILED, PAUSE_ON_FAILURE)
HELD_LABEL = _("failed, held for debugging")
# The reason of the trail entry a release writes (a JobEvent from the job's state to itself).
HOLD_RELEASED = "hold_released"


def is_paused(state: str, held_mode: str) -> bool:
    """A running job whose failed task is held (pause_on_failure): it has failed, and is kept for debugging."""
    return state == JobState.RUNNING and held_mode == PAUSE_ON_FAILURE


def state_label(state: str, held_mode: str = "") -> str:
    """What faces show for a job's state: "failed, held for debugging" for a paused one, else the state's name."""
    if is_paused(state, held_mode):
        return str(HELD_LABEL)
    try:
        return str(JobState(state).label)
    except ValueError:
        return state
