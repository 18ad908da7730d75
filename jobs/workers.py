"""The workers' steps: submit to a backend, sync a cluster, enforce timeouts, stop, retry.

Each is called by a thin django-q2 task in ``jobs/tasks.py`` and is idempotent:
a second delivery does no harm.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, Sum
from django.utils import timezone

from clusters.backends.base import ObservedState
from clusters.models import Cluster
from jobs import readiness
from jobs.describe import describe
from jobs.models import PRIORITY_RANK, Job, Task, Volume
from jobs.services import (
    STOP_LEASE_SECONDS,
    JobActionRefused,
    job_apply_path,
    job_stop,
    job_submit,
    job_transition,
)
from jobs.state import ACTIVE, FINAL, Input, JobState
from teams.models import Quota

log = logging.getLogger(__name__)


def backoff(retry_count: int) -> timedelta:
    seconds = min(settings.EASYAI_RETRY_BASE * (2 ** max(retry_count - 1, 0)), settings.EASYAI_RETRY_MAX)
    return timedelta(seconds=seconds)


def quota_wait_reason(job: Job) -> str:
    """Why a queued job waits for its team's quota, or "" when it fits now."""
    from jobs.quantity import format_cpu, format_memory

    quota = Quota.objects.filter(team_id=job.team_id, cluster_id=job.cluster_id).first()
    if quota is None:
        return ""
    used = (
        Job.objects.filter(
            team_id=job.team_id,
            cluster_id=job.cluster_id,
            state__in=[JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN],
        )
        .exclude(pk=job.pk)
        .aggregate(cpu=Sum("cpu_milli"), memory=Sum("memory_bytes"), gpu=Sum("gpu"))
    )
    cpu, memory, gpu = used["cpu"] or 0, used["memory"] or 0, used["gpu"] or 0
    if cpu + job.cpu_milli > quota.cpu_milli:
        return f"team quota: needs {format_cpu(job.cpu_milli)} CPU, {format_cpu(max(quota.cpu_milli - cpu, 0))} of {format_cpu(quota.cpu_milli)} CPU free"
    if memory + job.memory_bytes > quota.memory_bytes:
        return (
            f"team quota: needs {format_memory(job.memory_bytes)} memory, "
            f"{format_memory(max(quota.memory_bytes - memory, 0))} of {format_memory(quota.memory_bytes)} free"
        )
    if gpu + job.gpu > quota.gpu:
        return f"team quota: needs {job.gpu} GPU, {max(quota.gpu - gpu, 0)} of {quota.gpu} free"
    return ""


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
    waiting = quota_wait_reason(job)
    if waiting or (
        Quota.objects.filter(team_id=job.team_id, cluster_id=job.cluster_id).exists()
        and _higher_priority_queued_first(job)
    ):
        waiting = waiting or "team quota: waiting behind earlier or higher-priority jobs of the team"
        Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            reason="waiting",
            message=waiting,
            next_attempt_at=timezone.now() + timedelta(seconds=settings.EASYAI_SYNC_INTERVAL),
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
        retry = job.retry_count + 1
        kind = "cluster unavailable" if isinstance(exc, BackendUnavailable) else "backend error"
        Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            retry_count=retry,
            next_attempt_at=timezone.now() + backoff(retry),
            last_error=str(exc),
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
            _enqueue_now("jobs.tasks.stop_on_backend", job.pk)
    else:
        Job.objects.filter(pk=job.pk).update(next_attempt_at=None, last_error="")


def _enqueue_now(func: str, *args: Any) -> None:
    from django_q.tasks import async_task

    async_task(func, *args)


_TASK_STATE = {
    ObservedState.PENDING: Task.State.PENDING,
    ObservedState.RUNNING: Task.State.RUNNING,
    ObservedState.SUCCEEDED: Task.State.SUCCEEDED,
    ObservedState.FAILED: Task.State.FAILED,
    ObservedState.STOPPED: Task.State.STOPPED,
    ObservedState.MISSING: Task.State.MISSING,
}
_INPUT = {
    ObservedState.PENDING: Input.OBSERVED_PENDING,
    ObservedState.RUNNING: Input.OBSERVED_RUNNING,
    ObservedState.SUCCEEDED: Input.OBSERVED_SUCCEEDED,
    ObservedState.FAILED: Input.OBSERVED_FAILED,
    ObservedState.STOPPED: Input.OBSERVED_STOPPED,
}
_TASK_FIELDS = Task.OBSERVED_FIELDS


_ENDED = {ObservedState.SUCCEEDED, ObservedState.FAILED, ObservedState.STOPPED}


def _endpoint(cluster: Cluster, job: Job, task: Task, name: str, address: str) -> readiness.Endpoint:
    return readiness.Endpoint(cluster, job.public_id, job.framework, task.name, name, address)


def _still_ready(cluster: Cluster, job: Job, task: Task, endpoints: dict[str, str]) -> list[str]:
    """Endpoints ready at the addresses now reported: ready before at the same address, or with no check."""
    before, was_ready = task.endpoints or {}, set(task.ready_endpoints or [])
    return [
        name
        for name, address in sorted(endpoints.items())
        if (name in was_ready and before.get(name) == address)
        or not readiness.has_check(_endpoint(cluster, job, task, name, address))
    ]


def _apply_tasks(cluster: Cluster, job: Job, observation, tasks: dict[tuple[str, int], Task], now) -> list[Task]:
    changed = []
    for seen in observation.tasks:
        task = tasks.get((seen.role, seen.index))
        if task is None:
            continue
        # Only a running task is reachable: an ended one keeps no stale address.
        endpoints = dict(seen.endpoints) if seen.state == ObservedState.RUNNING else {}
        values = {
            "state": _TASK_STATE.get(seen.state, Task.State.PENDING),
            "node": seen.node[:255],
            "pod_name": seen.pod_name[:255],
            "address": seen.address[:64],
            "gpu_ids": list(seen.gpu_ids),
            "endpoints": endpoints,
            # A new address (a restarted pod) is checked again before the proxy routes to it.
            "ready_endpoints": _still_ready(cluster, job, task, endpoints),
            "exit_code": seen.exit_code,
            "reason": seen.reason[:100],
            "message": seen.message,
            "started_at": seen.started_at or task.started_at,
            # An ended task the backend gives no end time for ended by this pass, at the latest.
            "finished_at": seen.finished_at or task.finished_at or (now if seen.state in _ENDED else None),
        }
        if any(getattr(task, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(task, k, v)
            changed.append(task)
    if observation.state in _ENDED:
        # The job is over: a task the cluster still shows running (a worker the operator is about to delete
        # once the master succeeded) or no longer shows at all ended with it.
        for task in tasks.values():
            if task.state in (Task.State.PENDING, Task.State.RUNNING):
                task.state, task.endpoints, task.ready_endpoints = Task.State.STOPPED, {}, []
                task.finished_at = task.finished_at or now
                if task not in changed:
                    changed.append(task)
    return changed


def cluster_sync(cluster: Cluster) -> dict[str, int]:
    """One sync pass over a cluster: observe all its active jobs in one backend call and reconcile them."""
    from clusters.backends.base import BackendError

    jobs = list(
        Job.objects.filter(cluster=cluster, state__in=[JobState.UNKNOWN, JobState.PENDING, JobState.RUNNING]).only(
            "pk",
            "public_id",
            "state",
            "started_at",
            "scheduled_at",
            "attempt",
            "max_retries",
            "missing_since",
            "stop_requested",
            "framework",
            "created_at",
        )
    )
    counts = {"jobs": len(jobs), "moved": 0}
    if not jobs:
        return counts
    try:
        observations = cluster.backend().observe([j.public_id for j in jobs])
    except BackendError as exc:
        log.warning("sync of cluster %s failed: %s", cluster.name, exc)
        counts["error"] = 1
        return counts
    now = timezone.now()
    tasks_by_job: dict[int, dict[tuple[str, int], Task]] = {}
    for task in Task.objects.filter(job__in=[j.pk for j in jobs]):
        tasks_by_job.setdefault(task.job_id, {})[(task.role, task.index)] = task
    changed_tasks: list[Task] = []
    missing_grace = timedelta(seconds=settings.EASYAI_MISSING_GRACE)
    seen_jobs = []
    for job in jobs:
        seen = observations.get(job.public_id)
        if seen is None:
            continue
        if seen.state == ObservedState.MISSING:
            if job.missing_since is None:
                Job.objects.filter(pk=job.pk).update(missing_since=now)
            elif now - job.missing_since >= missing_grace and job_transition(
                job, Input.OBSERVED_MISSING, message="Its objects vanished from the cluster."
            ):
                counts["moved"] += 1
            continue
        if job.missing_since is not None:
            Job.objects.filter(pk=job.pk).update(missing_since=None)
        changed_tasks += _apply_tasks(cluster, job, seen, tasks_by_job.get(job.pk, {}), now)
        seen_jobs.append((job, seen))
    # The tasks first: a worker that dies after a job's final transition must not leave its tasks unrecorded.
    if changed_tasks:
        Task.objects.bulk_update(changed_tasks, _TASK_FIELDS, batch_size=500)
    for job, seen in seen_jobs:
        started_at, finished_at = _run_times(job, seen, tasks_by_job.get(job.pk, {}).values(), now)
        if job_apply_path(
            job,
            _INPUT[seen.state],
            reason=seen.reason,
            message=seen.message,
            started_at=started_at,
            finished_at=finished_at,
        ):
            counts["moved"] += 1
        elif seen.state == ObservedState.PENDING and seen.message and job.state == JobState.PENDING:
            # The "why is my job waiting" line, kept fresh without an event per pass.
            Job.objects.filter(pk=job.pk, state=JobState.PENDING).update(reason=seen.reason[:100], message=seen.message)
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(last_synced_at=now)
    _probe_endpoints(cluster, [job for job, _seen in seen_jobs], tasks_by_job)
    return counts


def _run_times(job: Job, seen, tasks, now) -> tuple[Any, Any]:
    """When the job started (its tasks' earliest start) and ended (as the backend says), as far as known.

    Kept between its creation and now, so a cluster's clock running ahead or behind never gives a job a
    start before it was submitted, an end in the future, or a negative duration.
    """
    starts = [t.started_at for t in tasks if t.started_at is not None]
    started = min(max(min(starts), job.created_at), now) if starts else None
    finished = None
    if seen.state in _ENDED:
        ends = [t.finished_at for t in tasks if t.finished_at is not None]
        finished = seen.finished_at or (max(ends) if ends else None)
        if finished is not None:
            finished = min(max(finished, started or job.created_at), now)
    return started, finished


def _probe_endpoints(cluster: Cluster, jobs: list[Job], tasks_by_job: dict[int, dict[tuple[str, int], Task]]) -> None:
    """Probe the running tasks' endpoints that are not ready yet; record those that answered."""
    probes = []
    for job in jobs:
        if job.state in FINAL:
            continue
        for task in tasks_by_job.get(job.pk, {}).values():
            if task.state != Task.State.RUNNING:
                continue
            for name, address in sorted((task.endpoints or {}).items()):
                if name in (task.ready_endpoints or []):
                    continue
                probe = readiness.probe_for(_endpoint(cluster, job, task, name, address))
                if probe is not None:
                    probes.append(((task, name), probe))
    answered = readiness.probe_all(probes)
    for task in {task for task, _name in answered}:
        ready = sorted({*(task.ready_endpoints or []), *(name for t, name in answered if t is task)})
        # Only while it still runs: a stop recorded meanwhile leaves no endpoint marked ready.
        if Task.objects.filter(pk=task.pk, state=Task.State.RUNNING).update(ready_endpoints=ready):
            task.ready_endpoints = ready


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


def stops_due(now=None, lease_seconds: float = STOP_LEASE_SECONDS, limit: int = 500) -> list[int]:
    """Stopped jobs whose stop on the backend is not confirmed yet and is due again, leased to one worker."""
    now = now or timezone.now()
    due = list(
        Job.objects.filter(stop_retry_at__lte=now).order_by("stop_retry_at").values_list("pk", flat=True)[:limit]
    )
    lease_until = now + timedelta(seconds=lease_seconds)
    return [pk for pk in due if Job.objects.filter(pk=pk, stop_retry_at__lte=now).update(stop_retry_at=lease_until)]


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


def submits_due(now=None, lease_seconds: float = 30.0) -> list[int]:
    """Queued jobs whose submit is due, leased so the scheduler does not enqueue them twice."""
    now = now or timezone.now()
    due = list(
        Job.objects.filter(state=JobState.QUEUED, stop_requested=False)
        .filter(next_attempt_at__isnull=True)
        .values_list("pk", flat=True)[:500]
    ) + list(
        Job.objects.filter(state=JobState.QUEUED, stop_requested=False, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:500]
    )
    leased = []
    lease_until = now + timedelta(seconds=lease_seconds)
    for pk in due:
        if Job.objects.filter(pk=pk, state=JobState.QUEUED).filter(next_attempt_at__isnull=True).update(
            next_attempt_at=lease_until
        ) or Job.objects.filter(pk=pk, state=JobState.QUEUED, next_attempt_at__lte=now).update(
            next_attempt_at=lease_until
        ):
            leased.append(pk)
    return leased


def cleanups_due(now=None, limit: int = 200) -> list[int]:
    """Finished jobs whose backend records have been kept as long as their cluster keeps them."""
    now = now or timezone.now()
    kept = Q()
    for cluster in Cluster.objects.only("pk", "kind", "settings"):
        kept |= Q(cluster_id=cluster.pk, finished_at__lte=now - cluster.keep_finished)
    if not kept:
        return []
    return list(
        Job.objects.filter(kept, state__in=FINAL, cleaned_up=False)
        .order_by("finished_at")
        .values_list("pk", flat=True)[:limit]
    )


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
