"""The scheduler's scans: which jobs are due for a submit, a stop retry, a timeout, a cleanup or a hold's end.

Each returns job ids; the scans that could hand one job to two workers lease what they return.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from clusters.models import Cluster
from jobs.models import Job
from jobs.services import STOP_LEASE_SECONDS
from jobs.state import ACTIVE, FINAL, JobState
from jobs.workers.cleanup import not_held


def submits_due(now=None, lease_seconds: float = 30.0) -> list[int]:
    """Queued jobs whose submit is due, leased so the scheduler does not enqueue them twice."""
    now = now or timezone.now()
    due = list(
        Job.objects.filter(state=JobState.QUEUED, stop_requested=False)
        .filter(submit_retry_at__isnull=True)
        .values_list("pk", flat=True)[:500]
    ) + list(
        Job.objects.filter(state=JobState.QUEUED, stop_requested=False, submit_retry_at__lte=now).values_list(
            "pk", flat=True
        )[:500]
    )
    leased = []
    lease_until = now + timedelta(seconds=lease_seconds)
    for pk in due:
        if Job.objects.filter(pk=pk, state=JobState.QUEUED).filter(submit_retry_at__isnull=True).update(
            submit_retry_at=lease_until
        ) or Job.objects.filter(pk=pk, state=JobState.QUEUED, submit_retry_at__lte=now).update(
            submit_retry_at=lease_until
        ):
            leased.append(pk)
    return leased


def stops_due(now=None, lease_seconds: float = STOP_LEASE_SECONDS, limit: int = 500) -> list[int]:
    """Stopped jobs whose stop on the backend is not confirmed yet and is due again, leased to one worker."""
    now = now or timezone.now()
    due = list(
        Job.objects.filter(stop_retry_at__lte=now).order_by("stop_retry_at").values_list("pk", flat=True)[:limit]
    )
    lease_until = now + timedelta(seconds=lease_seconds)
    return [pk for pk in due if Job.objects.filter(pk=pk, stop_retry_at__lte=now).update(stop_retry_at=lease_until)]


def jobs_timed_out(now=None) -> list[int]:
    """Running or pending jobs past their spec's timeout."""
    now = now or timezone.now()
    result = []
    for job in Job.objects.filter(state__in=ACTIVE, timeout_seconds__isnull=False).only(
        "pk", "created_at", "started_at", "timeout_seconds"
    ):
        since = job.started_at or job.created_at
        if since + timedelta(seconds=job.timeout_seconds) <= now:
            result.append(job.pk)
    return result


def cleanups_due(now=None, limit: int = 200) -> list[int]:
    """Finished jobs whose backend records have been kept as long as their cluster keeps them."""
    now = now or timezone.now()
    kept = Q()
    for cluster in Cluster.objects.only("pk", "kind", "settings"):
        kept |= Q(cluster_id=cluster.pk, finished_at__lte=now - cluster.keep_finished)
    if not kept:
        return []
    return list(
        Job.objects.filter(kept, not_held(now), state__in=FINAL, cleaned_up=False)
        .order_by("finished_at")
        .values_list("pk", flat=True)[:limit]
    )


def holds_run_out(now=None, limit: int = 200) -> list[int]:
    """Jobs whose failed task's hold has run out (``Job.held_until`` passed): their holds are to end."""
    now = now or timezone.now()
    return list(Job.objects.filter(held_until__lte=now).order_by("held_until").values_list("pk", flat=True)[:limit])
