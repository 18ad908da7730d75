"""The objects a job is submitted as: a training-operator job, a Volcano Job or a single Pod (render)."""

from __future__ import annotations

from typing import Any

from clusters.backends.base import JobDescription
from clusters.backends.kubernetes.manifests.endpoints import endpoint_objects
from clusters.backends.kubernetes.manifests.names import (
    LABEL_INDEX,
    LABEL_ROLE,
    POD_FRAMEWORKS,
    PRIORITY_CLASSES,
    TRAINING,
    TRAINING_GROUP,
    TRAINING_VERSION,
    VC_QUEUE_ANNOTATION,
    VOLCANO_FRAMEWORKS,
    VOLCANO_GROUP,
    VOLCANO_VERSION,
    ClusterSettings,
    queue_name,
    roles,
    uses_volcano,
)
from clusters.backends.kubernetes.manifests.pods import _metadata, _template, pod_spec


def training_job(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    kind = TRAINING[job.framework]
    replica_specs: dict[str, Any] = {}
    for role, tasks in roles(job).items():
        if role not in kind.replica_types:
            raise ValueError(f"{job.framework} has no role {role!r} (one of {', '.join(kind.replica_types)})")
        spec = pod_spec(cluster, job, tasks[0], kind.container, "training")
        replica_specs[kind.replica_types[role]] = {
            "replicas": len(tasks),
            # Failures are final: EasyAI records them and the user re-runs; the operator never restarts.
            "restartPolicy": "Never",
            "template": _template(job, role, spec),
        }
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if uses_volcano(cluster):
        scheduling: dict[str, Any] = {
            "queue": queue_name(cluster, job),
            "priorityClass": PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"]),
        }
        if job.gang:
            scheduling["minAvailable"] = len(job.tasks)
        run_policy["schedulingPolicy"] = scheduling
    return {
        "apiVersion": f"{TRAINING_GROUP}/{TRAINING_VERSION}",
        "kind": kind.kind,
        "metadata": _metadata(cluster, job),
        "spec": {"runPolicy": run_policy, kind.replica_field: replica_specs},
    }


def volcano_job(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    tasks = []
    for role, role_tasks in roles(job).items():
        spec = pod_spec(cluster, job, role_tasks[0], role, "volcano")
        spec["restartPolicy"] = "Never"
        tasks.append({"name": role, "replicas": len(role_tasks), "template": _template(job, role, spec)})
    spec: dict[str, Any] = {
        "minAvailable": len(job.tasks) if job.gang else 1,
        "tasks": tasks,
        # svc: stable hostnames per task ({job}-{task}-{index}.{job}); env: VC_TASK_INDEX in each pod.
        "plugins": {"svc": [], "env": []},
        # An evicted (preempted) pod restarts the whole gang; any failed pod ends the job as failed.
        "policies": [
            {"event": "PodEvicted", "action": "RestartJob"},
            {"event": "PodFailed", "action": "TerminateJob"},
        ],
        "maxRetry": 3,
    }
    if uses_volcano(cluster):
        spec["schedulerName"] = "volcano"
        spec["queue"] = queue_name(cluster, job)
        spec["priorityClassName"] = PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"])
    return {
        "apiVersion": f"{VOLCANO_GROUP}/{VOLCANO_VERSION}",
        "kind": "Job",
        "metadata": _metadata(cluster, job),
        "spec": spec,
    }


def single_pod(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    if len(job.tasks) != 1:
        raise ValueError(f"a {job.framework} has exactly one task, not {len(job.tasks)}")
    task = job.tasks[0]
    spec = pod_spec(cluster, job, task, job.framework, "pod")
    spec["restartPolicy"] = "Never"
    if job.framework == "notebook" and "jupyter" in task.ports:
        # Jupyter reads JUPYTER_TOKEN when no token is set on its command line: one only the portal can make.
        from clusters.crypto import endpoint_token

        spec["containers"][0].setdefault("env", []).append(
            {"name": "JUPYTER_TOKEN", "value": endpoint_token(job.job_id)}
        )
    if job.framework == "notebook" and "vscode" in task.ports:
        # code-server asks for a password whose hash only the portal can make; its proxy sends the session cookie.
        from clusters.crypto import endpoint_password_hash

        spec["containers"][0].setdefault("env", []).append(
            {"name": "HASHED_PASSWORD", "value": endpoint_password_hash(job.job_id)}
        )
    metadata = _metadata(cluster, job)
    metadata["labels"] = {**metadata["labels"], LABEL_ROLE: task.role, LABEL_INDEX: str(task.index)}
    if uses_volcano(cluster):
        metadata["annotations"] = {**metadata["annotations"], VC_QUEUE_ANNOTATION: queue_name(cluster, job)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def render(job: JobDescription, cluster: ClusterSettings) -> list[dict[str, Any]]:
    """Everything submit creates for the job, in creation order: its object, then its endpoints' objects."""
    if job.framework in TRAINING:
        main = training_job(cluster, job)
    elif job.framework in VOLCANO_FRAMEWORKS:
        main = volcano_job(cluster, job)
    elif job.framework in POD_FRAMEWORKS:
        main = single_pod(cluster, job)
    else:
        raise ValueError(f"unknown framework {job.framework!r}")
    return [main, *endpoint_objects(cluster, job)]
