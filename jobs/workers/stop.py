"""The stop steps: a timed-out job is stopped, and a stopped job's tasks are stopped on its backend until it confirms."""

from __future__ import annotations

import logging

from django.utils import timezone

from jobs.models import Job, Task
from jobs.services import JobActionRefused, job_stop
from jobs.state import FINAL, Input
from jobs.workers.common import backoff

log = logging.getLogger(__name__)


def job_timeout(job_pk: int) -> None:
    job = Job.objects.filter(pk=job_pk).first()
    if job is None or job.state in FINAL:
        return
    try:
        job_stop(
            job=job,
            event=Input.TIMEOUT,
            reason="timeout",
            message=f"Ran past its timeout of {job.spec.get('timeout')}.",
        )
    except JobActionRefused:
        pass


def job_stop_on_backend(job_pk: int) -> None:
    """Stop a job's tasks on its backend (idempotent); a failed stop is retried with back-off until it succeeds."""
    job = Job.objects.select_related("cluster").filter(pk=job_pk).first()
    if job is None:
        return
    try:
        job.cluster.backend().stop(job.public_id)
    except Exception as exc:  # whatever kept the stop from the backend (BackendError or worse): asked again later
        # The job is recorded stopped, but its tasks may still run: keep asking (a 5xx or a timeout
        # passes) rather than leave them until the cleanup long after.
        attempts = job.stop_attempts + 1
        Job.objects.filter(pk=job.pk).update(
            stop_attempts=attempts, stop_retry_at=timezone.now() + backoff(attempts), stop_error=str(exc)
        )
        log.warning("stop of %s on its backend failed (attempt %s): %s", job.public_id, attempts, exc)
        return
    # Only the lease this run held: a stop asked for again meanwhile (a submit that raced it) keeps its own.
    Job.objects.filter(pk=job.pk, stop_retry_at=job.stop_retry_at).update(stop_retry_at=None, stop_error="")
    Task.objects.filter(job=job, state__in=[Task.State.PENDING, Task.State.RUNNING]).update(
        state=Task.State.STOPPED, finished_at=timezone.now()
    )
