"""The submit step: hand a queued job to its backend once the team's quota lets it, and retries of failed jobs."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs import quota
from jobs.describe import describe
from jobs.models import PRIORITY_RANK, Job, Volume
from jobs.services import STOP_LEASE_SECONDS, job_submit, job_transition
from jobs.state import FINAL, Input, JobState
from jobs.workers.common import backoff, enqueue_now

log = logging.getLogger(__name__)


def _higher_priority_queued_first(job: Job) -> bool:
    """Within a team's quota, queued jobs go in priority order, first come first served."""
    rank = PRIORITY_RANK[job.priority]
    higher = [p for p, r in PRIORITY_RANK.items() if r > rank]
    ahead = Job.objects.filter(
        team_id=job.team_id, cluster_id=job.cluster_id, state=JobState.QUEUED, deleted=False
    ).exclude(pk=job.pk)
    return (
        ahead.filter(priority__in=higher).exists()
        or ahead.filter(priority=job.priority, created_at__lt=job.created_at).exists()
    )


def job_submit_to_backend(job_pk: int) -> None:
    """The submit worker's step. Idempotent: a redelivered submit never creates a second job."""
    from clusters.backends.base import BackendError, BackendRejected, BackendUnavailable

    job = Job.objects.select_related("cluster", "team", "owner", "pre_job").filter(pk=job_pk).first()
    if job is None or job.state != JobState.QUEUED or job.stop_requested:
        return
    waiting = quota.wait_reason(job)
    if waiting or (
        quota.has_quota(team_id=job.team_id, cluster_id=job.cluster_id) and _higher_priority_queued_first(job)
    ):
        waiting = waiting or "team quota: waiting behind earlier or higher-priority jobs of the team"
        Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            reason="waiting",
            message=waiting,
            submit_retry_at=timezone.now() + timedelta(seconds=settings.EASYAI_SYNC_INTERVAL),
        )
        return
    volumes = list(Volume.objects.filter(name__in=job.spec.get("volumes", [])))
    backend = job.cluster.backend()
    try:
        backend.submit(describe(job, volumes=volumes))
    except BackendRejected as exc:
        job_transition(job, Input.REJECTED, message=str(exc))
        return
    except BackendError as exc:
        retry = job.submit_attempts + 1
        kind = "cluster unavailable" if isinstance(exc, BackendUnavailable) else "backend error"
        Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            submit_attempts=retry,
            submit_retry_at=timezone.now() + backoff(retry),
            submit_error=str(exc),
            reason="submit_retry",
            message=f"{kind}: {exc} (attempt {retry}, retrying with back-off)",
        )
        log.warning("submit of %s failed (attempt %s): %s", job.public_id, retry, exc)
        return
    if not job_transition(job, Input.START):
        job.refresh_from_db()
        if job.state in FINAL:
            # Stopped while we were submitting: make sure nothing keeps running. The stop the action
            # enqueued may have run before the job existed on the backend, so this one is leased again.
            Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() + timedelta(seconds=STOP_LEASE_SECONDS))
            enqueue_now("jobs.tasks.stop_on_backend", job.pk)
    else:
        Job.objects.filter(pk=job.pk).update(submit_retry_at=None, submit_error="")


def job_retry(job_pk: int) -> Job | None:
    """Resubmit a failed job while it has retries left (the spec's max_retries)."""
    job = Job.objects.select_related("owner").filter(pk=job_pk).first()
    if job is None or job.state != JobState.FAILED or job.attempt > job.max_retries:
        return None
    if Job.objects.filter(rerun_of=job, attempt=job.attempt + 1).exists():
        return None  # a redelivered retry
    try:
        return job_submit(user=job.owner, data=job.spec, rerun_of=job, attempt=job.attempt + 1)
    except ValidationError as exc:
        log.warning("retry of %s refused: %s", job.public_id, exc)
        return None
