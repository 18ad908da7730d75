"""The sync pass: observe all of a cluster's active jobs in one backend call and reconcile them in bulk."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from clusters.backends.base import JobObservation, ObservedState
from clusters.models import Cluster
from jobs import readiness
from jobs.models import Job, JobClusterEvent, Task
from jobs.services import job_apply_path, job_transition
from jobs.spec.toolbox import services_of
from jobs.state import FINAL, HOLDS_RESOURCES, KEEP_FAILED, PAUSE_ON_FAILURE, Input, JobState
from jobs.workers import holds

log = logging.getLogger(__name__)

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


class _ServiceHealth:
    """Which endpoints of a pass's jobs are background services, and their health paths: each job's spec is
    read once per pass, and only when one of its endpoints needs a readiness decision (never in a quiet pass)."""

    def __init__(self) -> None:
        self._by_job: dict[int, dict[tuple[str, str], str]] = {}

    def of(self, job: Job, task: Task, name: str) -> str | None:
        if job.pk not in self._by_job:
            spec = Job.objects.filter(pk=job.pk).values_list("spec", flat=True).first() or {}
            self._by_job[job.pk] = {
                (role, service["name"]): service.get("health", "") for role, service in services_of(spec)
            }
        return self._by_job[job.pk].get((task.role, name))


def _endpoint(
    cluster: Cluster, job: Job, task: Task, name: str, address: str, services: _ServiceHealth
) -> readiness.Endpoint:
    health = services.of(job, task, name)
    return readiness.Endpoint(cluster, job.public_id, job.framework, task.name, name, address, health)


def _still_ready(
    cluster: Cluster, job: Job, task: Task, endpoints: dict[str, str], services: _ServiceHealth
) -> list[str]:
    """Endpoints ready at the addresses now reported: ready before at the same address, or with no check."""
    before, was_ready = task.endpoints or {}, set(task.ready_endpoints or [])
    return [
        name
        for name, address in sorted(endpoints.items())
        if (name in was_ready and before.get(name) == address)
        or not readiness.has_check(_endpoint(cluster, job, task, name, address, services))
    ]


def _apply_tasks(
    cluster: Cluster, job: Job, observation, tasks: dict[tuple[str, int], Task], now, services: _ServiceHealth
) -> list[Task]:
    changed = []
    for seen in observation.tasks:
        task = tasks.get((seen.role, seen.index))
        if task is None:
            continue
        # A task kept after its command failed (keep_failed) has failed: the job's record says so; a paused one
        # (pause_on_failure) runs on, its services reachable, while the job shows it failed and held.
        observed = {KEEP_FAILED: ObservedState.FAILED, PAUSE_ON_FAILURE: ObservedState.RUNNING}.get(
            seen.held, seen.state
        )
        # Only a running task is reachable: an ended one keeps no stale address.
        endpoints = dict(seen.endpoints) if observed == ObservedState.RUNNING else {}
        values = {
            "state": _TASK_STATE.get(observed, Task.State.PENDING),
            "node": seen.node[:255],
            "pod_name": seen.pod_name[:255],
            "address": seen.address[:64],
            "gpu_ids": list(seen.gpu_ids),
            "endpoints": endpoints,
            # A new address (a restarted pod) is checked again before the proxy routes to it.
            "ready_endpoints": _still_ready(cluster, job, task, endpoints, services),
            "exit_code": seen.exit_code,
            "reason": (seen.reason or ("held" if seen.held else ""))[:100],
            "message": seen.message,
            "started_at": seen.started_at or task.started_at,
            # An ended task the backend gives no end time for ended by this pass, at the latest.
            "finished_at": seen.finished_at or task.finished_at or (now if observed in _ENDED else None),
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
        Job.objects.filter(cluster=cluster, state__in=HOLDS_RESOURCES).only(
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
            "held_until",
            "held_mode",
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
    services = _ServiceHealth()
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
        # The hold is recorded before any transition: a job never ends unheld when its tasks are to be kept.
        seen = _as_held(job, seen, now)
        changed_tasks += _apply_tasks(cluster, job, seen, tasks_by_job.get(job.pk, {}), now, services)
        seen_jobs.append((job, seen))
    # The tasks first: a worker that dies after a job's final transition must not leave its tasks unrecorded.
    if changed_tasks:
        Task.objects.bulk_update(changed_tasks, _TASK_FIELDS, batch_size=500)
    _keep_events(seen_jobs, tasks_by_job, now)
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
    _probe_endpoints(cluster, [job for job, _seen in seen_jobs], tasks_by_job, services)
    return counts


def _as_held(job: Job, seen: JobObservation, now) -> JobObservation:
    """The observation as the job's record reads it once a held task's hold is recorded (``jobs.workers.holds``):
    a kept failed task fails the job, a paused one keeps it running."""
    hold = holds.hold_in(seen)
    if not holds.hold_record(job, hold, now) or hold is None:
        return seen
    if hold.mode == PAUSE_ON_FAILURE and seen.state in (ObservedState.RUNNING, ObservedState.FAILED):
        return replace(seen, state=ObservedState.RUNNING)
    if hold.mode == KEEP_FAILED and seen.state in (ObservedState.PENDING, ObservedState.RUNNING):
        code = "" if hold.exit_code is None else f" with exit code {hold.exit_code}"
        message = (
            f"Task {hold.task} failed{code}; the job's tasks are kept for debugging until "
            f"{holds.until_text(job.held_until)}."
        )
        return replace(seen, state=ObservedState.FAILED, reason="failed", message=message)
    return seen


def _keep_events(seen_jobs: list, tasks_by_job: dict[int, dict[tuple[str, int], Task]], now) -> None:
    """Keep the cluster events the backend reported: new ones created, repeats counted; a few queries in all."""
    reported = [(job, event) for job, seen in seen_jobs for event in seen.events]
    if not reported:
        return
    known = {
        (job_id, uid): (pk, count)
        for pk, job_id, uid, count in JobClusterEvent.objects.filter(
            job__in={job.pk for job, _event in reported}, uid__in={event.uid for _job, event in reported}
        ).values_list("pk", "job_id", "uid", "count")
    }
    new, repeated = {}, {}
    for job, event in reported:
        at = event.last_at or now
        row = JobClusterEvent(
            job_id=job.pk, uid=event.uid[:64], type=event.type[:16], reason=event.reason[:100], message=event.message,
            count=max(event.count, 1), object=event.object[:300], first_at=event.first_at or at, at=at,
        )  # fmt: skip
        if event.task:
            role, _dash, index = event.task.rpartition("-")
            task = tasks_by_job.get(job.pk, {}).get((role, int(index))) if index.isdigit() else None
            row.task_id = task.pk if task is not None else None
        found = known.get((job.pk, row.uid))
        if found is None:
            new[(job.pk, row.uid)] = row
        elif found[1] != row.count:
            row.pk = found[0]
            repeated[row.pk] = row
    if new:
        # Another worker's pass may have kept the same event a moment ago: once is enough.
        JobClusterEvent.objects.bulk_create(new.values(), batch_size=500, ignore_conflicts=True)
    if repeated:
        JobClusterEvent.objects.bulk_update(repeated.values(), ["count", "message", "at"], batch_size=500)


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


def _probe_endpoints(
    cluster: Cluster, jobs: list[Job], tasks_by_job: dict[int, dict[tuple[str, int], Task]], services: _ServiceHealth
) -> None:
    """Probe the running tasks' endpoints that are not ready yet; record those that answered."""
    probes = []
    job_of: dict[int, Job] = {}
    for job in jobs:
        if job.state in FINAL:
            continue
        for task in tasks_by_job.get(job.pk, {}).values():
            job_of[task.pk] = job
            if task.state != Task.State.RUNNING:
                continue
            for name, address in sorted((task.endpoints or {}).items()):
                if name in (task.ready_endpoints or []):
                    continue
                probe = readiness.probe_for(_endpoint(cluster, job, task, name, address, services))
                if probe is not None:
                    probes.append(((task, name), probe))
    answered = readiness.probe_all(probes)
    for task in {task for task, _name in answered}:
        readiness.mark_ready(job_of[task.pk], task, [name for t, name in answered if t is task])
