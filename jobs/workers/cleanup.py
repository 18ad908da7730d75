"""The cleanup step: the backend forgets a finished job once its cluster has kept it long enough.

A job whose failed task is held for debugging (``Job.held_until``, the spec's ``debug.keep_failed``) is kept
until the hold is released or runs out, whatever its cluster's keep time; ``holds_ended`` ends the holds that
ran out, and the cleanup follows.
"""

from __future__ import annotations

import logging

from django.db.models import Q
from django.utils import timezone

from jobs.models import Job
from jobs.state import FINAL
from jobs.workers.common import enqueue_now

log = logging.getLogger(__name__)


def not_held(now) -> Q:
    """Jobs with nothing held for debugging at ``now``: no hold, or one that has run out."""
    return Q(held_until__isnull=True) | Q(held_until__lte=now)


def job_cleanup(job_pk: int) -> None:
    """Let the backend forget a finished job (its logs and outputs stay in storage). Idempotent."""
    from clusters.backends.base import BackendError

    job = (
        Job.objects.select_related("cluster")
        .filter(not_held(timezone.now()), pk=job_pk, state__in=FINAL, cleaned_up=False)
        .first()
    )
    if job is None:
        return
    try:
        job.cluster.backend().delete(job.public_id)
    except BackendError as exc:
        log.warning("cleanup of %s failed, will retry: %s", job.public_id, exc)
        return
    Job.objects.filter(pk=job.pk).update(cleaned_up=True)


def cleanup_if_due(job_pk: int) -> None:
    """Enqueue the cleanup of a finished job now if its cluster has kept it long enough (a hold just ended)."""
    job = Job.objects.select_related("cluster").filter(pk=job_pk, state__in=FINAL, cleaned_up=False).first()
    if (
        job is not None
        and job.finished_at is not None
        and job.finished_at <= timezone.now() - job.cluster.keep_finished
    ):
        enqueue_now("jobs.tasks.cleanup_job", job.pk)
