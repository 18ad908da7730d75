"""The cleanup step: the backend forgets a finished job once its cluster has kept it long enough."""

from __future__ import annotations

import logging

from jobs.models import Job
from jobs.state import FINAL

log = logging.getLogger(__name__)


def job_cleanup(job_pk: int) -> None:
    """Let the backend forget a finished job (its logs and outputs stay in storage). Idempotent."""
    from clusters.backends.base import BackendError

    job = Job.objects.select_related("cluster").filter(pk=job_pk, state__in=FINAL, cleaned_up=False).first()
    if job is None:
        return
    try:
        job.cluster.backend().delete(job.public_id)
    except BackendError as exc:
        log.warning("cleanup of %s failed, will retry: %s", job.public_id, exc)
        return
    Job.objects.filter(pk=job.pk).update(cleaned_up=True)
