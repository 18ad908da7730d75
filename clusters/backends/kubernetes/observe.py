"""Kubernetes objects -> observations. Pure functions over the dicts the API returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clusters.backends.base import WAITING_REASONS, EventObservation, JobObservation, ObservedState, TaskObservation
from clusters.backends.kubernetes import manifests as m

# Volcano Job phases (batch.volcano.sh/v1alpha1 JobPhase).
VOLCANO_PHASES = {
    "Pending": ObservedState.PENDING,
    "Inqueue": ObservedState.PENDING,
    "Running": ObservedState.RUNNING,
    "Restarting": ObservedState.RUNNING,
    "Completing": ObservedState.RUNNING,
    "Terminating": ObservedState.RUNNING,
    "Aborting": ObservedState.RUNNING,
    "Completed": ObservedState.SUCCEEDED,
    # Our policies terminate the job when a pod fails: Terminated is a failure.
    "Terminated": ObservedState.FAILED,
    "Failed": ObservedState.FAILED,
    # Aborted by someone with vcctl: nothing of ours ends a job that way.
    "Aborted": ObservedState.STOPPED,
}
POD_PHASES = {
    "Pending": ObservedState.PENDING,
    "Running": ObservedState.RUNNING,
    "Succeeded": ObservedState.SUCCEEDED,
    "Failed": ObservedState.FAILED,
    "Unknown": ObservedState.PENDING,
}
FINAL = (ObservedState.SUCCEEDED, ObservedState.FAILED, ObservedState.STOPPED)


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_task(pod: dict[str, Any]) -> tuple[str, int]:
    """(role, index) of a pod, from the labels the operators and we write, else its name."""
    meta = pod.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    role = labels.get(m.LABEL_ROLE) or labels.get(m.TO_REPLICA_TYPE) or annotations.get(m.VC_TASK_SPEC) or ""
    raw = (
        labels.get(m.TO_REPLICA_INDEX)
        or labels.get(m.VC_TASK_INDEX)
        or annotations.get(m.VC_TASK_INDEX)
        or labels.get(m.LABEL_INDEX)
        or str(meta.get("name", "")).rsplit("-", 1)[-1]
    )
    try:
        index = int(raw)
    except ValueError:
        index = 0
    return role, index


ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"


def main_container_status(pod: dict[str, Any]) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    main = containers[0].get("name") if containers else None
    if ARGO_WORKFLOW_LABEL in ((pod.get("metadata") or {}).get("labels") or {}):
        main = "main"  # Argo's pod: its executor's "wait" container beside the step's own "main"
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == main:
            return status
    return statuses[0] if statuses else {}


def pod_endpoints(pod: dict[str, Any], address: str) -> dict[str, str]:
    """The main container's named ports as "podIP:containerPort": the portal proxies to them directly."""
    containers = (pod.get("spec") or {}).get("containers") or []
    ports = (containers[0].get("ports") if containers else None) or []
    return {
        port["name"]: f"{address}:{port['containerPort']}"
        for port in ports
        if port.get("name") and port.get("containerPort") and port.get("protocol", "TCP") == "TCP"
    }


def task_observation(pod: dict[str, Any]) -> TaskObservation:
    role, index = pod_task(pod)
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    state = POD_PHASES.get(status.get("phase", ""), ObservedState.PENDING)
    container = main_container_status(pod)
    observation = TaskObservation(
        role=role,
        index=index,
        state=state,
        node=(pod.get("spec") or {}).get("nodeName") or "",
        pod_name=meta.get("name", ""),
        address=status.get("podIP") or "",
        reason=status.get("reason") or "",
        message=status.get("message") or "",
        started_at=parse_time(status.get("startTime")),
    )
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False" and not observation.reason:
        # Not placed: the scheduler says why ("0/12 nodes are available: 4 Insufficient nvidia.com/gpu…").
        observation.reason = scheduled.get("reason") or "Unschedulable"
        observation.message = scheduled.get("message") or ""
    cstate = container.get("state") or {}
    if "waiting" in cstate:
        waiting = cstate["waiting"] or {}
        observation.reason = waiting.get("reason") or observation.reason
        observation.message = waiting.get("message") or observation.message
    elif "terminated" in cstate:
        terminated = cstate["terminated"] or {}
        observation.exit_code = terminated.get("exitCode")
        observation.reason = terminated.get("reason") or observation.reason
        observation.message = terminated.get("message") or observation.message
        observation.finished_at = parse_time(terminated.get("finishedAt"))
        if state == ObservedState.RUNNING:
            # The main container ended while a sidecar runs on: the task is over.
            state = ObservedState.SUCCEEDED if observation.exit_code == 0 else ObservedState.FAILED
            observation.state = state
    elif "running" in cstate:
        observation.started_at = parse_time((cstate["running"] or {}).get("startedAt")) or observation.started_at
    if observation.state == ObservedState.RUNNING and observation.address:
        observation.endpoints = pod_endpoints(pod, observation.address)
    if meta.get("deletionTimestamp") and state in (ObservedState.PENDING, ObservedState.RUNNING):
        observation.reason = observation.reason or "Terminating"
    return observation


def training_state(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(state, reason, message) from training-operator conditions (Created, Running, Restarting, Succeeded, Failed)."""
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    by_type = {c.get("type"): c for c in conditions}
    for kind, state in (
        ("Succeeded", ObservedState.SUCCEEDED),
        ("Failed", ObservedState.FAILED),
        ("Restarting", ObservedState.RUNNING),
        ("Running", ObservedState.RUNNING),
        ("Suspended", ObservedState.PENDING),
        ("Created", ObservedState.PENDING),
    ):
        if kind in by_type:
            condition = by_type[kind]
            return state, condition.get("reason") or kind, condition.get("message") or ""
    return ObservedState.PENDING, "", ""


def volcano_state(obj: dict[str, Any]) -> tuple[str, str, str]:
    state = (obj.get("status") or {}).get("state") or {}
    phase = state.get("phase") or "Pending"
    return VOLCANO_PHASES.get(phase, ObservedState.PENDING), state.get("reason") or phase, state.get("message") or ""


def expected_tasks(obj: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (role, index) the object asks for, from its spec."""
    spec = obj.get("spec") or {}
    tasks: list[tuple[str, int]] = []
    if obj.get("kind") == "Pod":
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return [(labels.get(m.LABEL_ROLE, obj.get("kind", "").lower()), int(labels.get(m.LABEL_INDEX, "0")))]
    if obj.get("apiVersion", "").startswith(m.VOLCANO_GROUP + "/"):
        for task in spec.get("tasks") or []:
            tasks += [(task.get("name", ""), i) for i in range(task.get("replicas") or 0)]
        return tasks
    for key, value in spec.items():
        if key.endswith("ReplicaSpecs") and isinstance(value, dict):
            for replica_type, replica in value.items():
                tasks += [(replica_type.lower(), i) for i in range((replica or {}).get("replicas", 1) or 0)]
    return tasks


def job_observation(job_id: str, obj: dict[str, Any] | None, pods: list[dict[str, Any]]) -> JobObservation:
    """One job from its object (None: a plain pod job, or gone) and its pods."""
    if obj is None:
        single = [p for p in pods if (p.get("metadata") or {}).get("name") == job_id] or [
            # A one-task step of a pipeline run on Argo: Argo names the pod, which carries the job's labels.
            p
            for p in pods
            if ARGO_WORKFLOW_LABEL in ((p.get("metadata") or {}).get("labels") or {})
        ][:1]
        if not single:
            return JobObservation(job_id=job_id, state=ObservedState.MISSING, reason="NotFound",
                                  message="the cluster has no object for this job")  # fmt: skip
        obj = {**single[0], "kind": "Pod"}
        task = task_observation(single[0])
        state = task.state
        return JobObservation(
            job_id=job_id,
            state=state,
            reason=task.reason,
            message=task.message,
            tasks=[task],
            started_at=task.started_at,
            finished_at=task.finished_at if state in FINAL else None,
        )
    if obj.get("apiVersion", "").startswith(m.VOLCANO_GROUP + "/"):
        state, reason, message = volcano_state(obj)
        status = obj.get("status") or {}
        started = parse_time(obj["metadata"].get("creationTimestamp"))
        finished = parse_time((status.get("state") or {}).get("lastTransitionTime")) if state in FINAL else None
    else:
        state, reason, message = training_state(obj)
        status = obj.get("status") or {}
        started = parse_time(status.get("startTime"))
        finished = parse_time(status.get("completionTime")) if state in FINAL else None
        if state in FINAL and finished is None:
            final = [c for c in status.get("conditions") or [] if c.get("type") in ("Succeeded", "Failed")]
            finished = parse_time(final[-1].get("lastTransitionTime")) if final else None
    observed = {pod_task(p): task_observation(p) for p in pods}
    tasks = []
    for role, index in expected_tasks(obj):
        task = observed.pop((role, index), None)
        if task is None:
            # No pod (yet, or cleaned up): the job's own state stands for the task once it is final.
            task = TaskObservation(role=role, index=index, state=state if state in FINAL else ObservedState.PENDING)
        tasks.append(task)
    tasks += observed.values()  # pods beyond the spec (a scaled job): still report them
    if state == ObservedState.PENDING:
        # The operator only says the job was created: a task that cannot start says why the job waits.
        stuck = next((t for t in tasks if t.reason in WAITING_REASONS and t.message), None)
        if stuck is not None:
            reason, message = stuck.reason, f"{stuck.role}-{stuck.index}: {stuck.message}"
    return JobObservation(
        job_id=job_id, state=state, reason=reason, message=message, tasks=tasks, started_at=started,
        finished_at=finished,
    )  # fmt: skip


def event_observation(event: dict[str, Any], task: str = "") -> EventObservation:
    """A core/v1 Event as the sync pass keeps it (``count``, ``series`` and the two timestamp styles read alike)."""
    meta = event.get("metadata") or {}
    involved = event.get("involvedObject") or {}
    series = event.get("series") or {}
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(meta.get("creationTimestamp"))
    )
    first = parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime")) or last
    count = event.get("count") or series.get("count") or 1
    return EventObservation(
        uid=str(meta.get("uid") or meta.get("name") or ""),
        type=str(event.get("type") or "Normal"),
        reason=str(event.get("reason") or ""),
        message=str(event.get("message") or event.get("note") or ""),
        count=int(count) if isinstance(count, int) else 1,
        first_at=first,
        last_at=last,
        object=f"{involved.get('kind', '')}/{involved.get('name', '')}",
        task=task,
    )


def apply_holds(
    observation: JobObservation, held: dict[tuple[str, int], tuple[str, int, int]], seconds: int = 0
) -> None:
    """A job's held tasks (``held``: (role, index) -> (mode, exit code, until), from their pods' ``held`` files;
    ``seconds``: how long the spec holds one, so the hold began that long before its end).

    The pod of a held task runs on (the wrapper holds it), so the operator still shows it running. keep_failed:
    the task failed (its command's status) and the job with it, its pods kept; pause_on_failure: the task is
    running, held, and so is the job.
    """
    failed: list[TaskObservation] = []
    for task in observation.tasks:
        found = held.get((task.role, task.index))
        if found is None:
            continue
        mode, code, until = found
        task.held, task.exit_code = mode, code
        task.held_until = datetime.fromtimestamp(until, UTC)
        task.reason = "Held"
        task.message = f"the command ended with status {code}; held for debugging ({mode})"
        if mode == "keep_failed":
            task.state = ObservedState.FAILED
            task.finished_at = task.held_until - timedelta(seconds=max(0, seconds))
            failed.append(task)
    if failed and observation.state not in FINAL:
        first = failed[0]
        observation.state = ObservedState.FAILED
        observation.reason = "Held"
        observation.message = (
            f"task {first.role}-{first.index} exited with code {first.exit_code}; its pods are kept for debugging"
        )
        observation.finished_at = observation.finished_at or min(t.finished_at or first.held_until for t in failed)


def held_now(observation: JobObservation, now: datetime | None = None) -> bool:
    """Whether a task of the job is held (its hold has not run out)."""
    now = now or datetime.now(UTC)
    return any(task.held and task.held_until and task.held_until > now for task in observation.tasks)
