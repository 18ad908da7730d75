"""Pod templates: a task's container (command, environment, resources, ports), its storage mounts from the
cluster's NFS (the job's places, a TensorBoard's summary_dirs, admin volumes), the debug toolbox (an init
container with the tools, the wrapped command: manifests/toolbox.py) and the pod spec around it."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import storage
from clusters.backends.kubernetes.manifests import toolbox as tools
from clusters.backends.kubernetes.manifests.names import (
    ENV_NAME,
    LABEL_INDEX,
    LABEL_ROLE,
    NFS_VOLUME,
    PER_POD_VARIABLES,
    PORT_NAME,
    PRIORITY_CLASSES,
    SUMMARIES_ROOT,
    TO_REPLICA_INDEX,
    TO_REPLICA_TYPE,
    VC_TASK_INDEX,
    VC_TASK_SPEC,
    ClusterSettings,
    job_annotations,
    job_labels,
    namespace_name,
    uses_volcano,
)


def _quantity_cpu(milli: float) -> str:
    milli = max(1, math.ceil(milli))
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"


def resources(cluster: ClusterSettings, job: JobDescription, task: TaskDescription) -> dict[str, Any]:
    """Limits as asked; requests = limits / oversell for cpu and memory; GPUs only as limits (requests equal)."""
    oversell = job.oversell if job.oversell and job.oversell > 0 else 1.0
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if task.cpu_milli:
        limits["cpu"] = _quantity_cpu(task.cpu_milli)
        requests["cpu"] = _quantity_cpu(task.cpu_milli / oversell)
    if task.memory_bytes:
        limits["memory"] = str(int(task.memory_bytes))
        requests["memory"] = str(max(1, int(task.memory_bytes / oversell)))
    if task.gpu:
        # Extended resources cannot be overcommitted: the API server wants requests == limits.
        limits[cluster.gpu_resource_name] = str(task.gpu)
        requests[cluster.gpu_resource_name] = str(task.gpu)
    return {"limits": limits, "requests": requests}


def _task_identity_env(source: str) -> list[dict[str, Any]]:
    """EASYAI_TASK_ROLE / EASYAI_TASK_INDEX from what the operator writes on each pod (for subPathExpr)."""
    if source == "training":
        role_ref, index_ref = f"metadata.labels['{TO_REPLICA_TYPE}']", f"metadata.labels['{TO_REPLICA_INDEX}']"
    elif source == "volcano":
        role_ref, index_ref = f"metadata.annotations['{VC_TASK_SPEC}']", f"metadata.annotations['{VC_TASK_INDEX}']"
    else:
        role_ref, index_ref = f"metadata.labels['{LABEL_ROLE}']", f"metadata.labels['{LABEL_INDEX}']"
    return [
        {"name": "EASYAI_TASK_ROLE", "valueFrom": {"fieldRef": {"fieldPath": role_ref}}},
        {"name": "EASYAI_TASK_INDEX", "valueFrom": {"fieldRef": {"fieldPath": index_ref}}},
    ]


def _env(
    job: JobDescription, task: TaskDescription, source: str, container_paths: dict[str, str], nfs: bool
) -> list[dict]:
    env = [{"name": "EASYAI_JOB_ID", "value": job.job_id}, *_task_identity_env(source)]
    if tools.wrappable(task):
        # Before the task's own: the wrapper's variables are not the user's to change.
        env += tools.wrapper_env(task, nfs)
    # Where each named endpoint listens, as the local backend gives it: here the container port itself.
    env += [{"name": _port_variable(port["name"]), "value": str(port["containerPort"])} for port in _ports(task)]
    seen = {item["name"] for item in env}
    for name, value in {**task.env, **container_paths}.items():
        if name in PER_POD_VARIABLES or name in seen or not ENV_NAME.match(name):
            continue
        seen.add(name)
        env.append({"name": name, "value": str(value)})
    return env


def _nfs_mounts(cluster: ClusterSettings, job: JobDescription, task: TaskDescription, source: str) -> list[dict]:
    """One mount per storage place, a sub-path of the cluster's NFS export (nfs_subpath's layout)."""
    mounts = []
    for place in task.places_seen(job):
        mount: dict[str, Any] = {"name": NFS_VOLUME, "mountPath": place.container_path}
        if place.variable == "summary_dir" and source != "pod":
            # Per task, in a role-wide template: built from the pod's own role and index.
            mount["subPathExpr"] = f"{job.job_id}/$(EASYAI_TASK_ROLE)-$(EASYAI_TASK_INDEX)/summary_dir"
        else:
            mount["subPath"] = place.relative
        if place.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts


def tensorboard_sources(task: TaskDescription) -> list[tuple[str, str]]:
    """(job id, task name) of each summary_dir a TensorBoard task shows, from its EASYAI_TENSORBOARD_SOURCES."""
    sources = []
    for item in filter(None, (part.strip() for part in task.env.get(storage.TENSORBOARD_SOURCES, "").split(","))):
        match = storage.TENSORBOARD_SOURCE.match(item)
        if match is None:
            raise ValueError(
                f"{storage.TENSORBOARD_SOURCES}: {item!r} is not a job id and task name (j-xxxxxxxx/role-0)"
            )
        sources.append((match.group(1), match.group(2)))
    return sources


def summary_mount_path(job_id: str, task_name: str) -> str:
    """Where a TensorBoard's pod sees the summary_dir of another job's task."""
    return f"{SUMMARIES_ROOT}/{job_id}/{task_name}"


def _summary_mounts(job: JobDescription, task: TaskDescription) -> list[dict]:
    if job.framework != "tensorboard":
        return []
    return [
        {
            "name": NFS_VOLUME,
            "mountPath": summary_mount_path(job_id, task_name),
            "subPath": f"{job_id}/{task_name}/summary_dir",
            "readOnly": True,
        }
        for job_id, task_name in tensorboard_sources(task)
    ]


def _extra_volumes(job: JobDescription) -> tuple[list[dict], list[dict]]:
    """Admin-defined volumes: {name, mountPath|mount_path, readOnly|read_only, subPath?, <volume source>}."""
    volumes, mounts = [], []
    for spec in job.volumes:
        mount_keys = {"mountPath", "mount_path", "readOnly", "read_only", "subPath", "sub_path"}
        volumes.append({k: v for k, v in spec.items() if k not in mount_keys})
        mount: dict[str, Any] = {"name": spec["name"], "mountPath": spec.get("mountPath") or spec.get("mount_path")}
        if spec.get("subPath") or spec.get("sub_path"):
            mount["subPath"] = spec.get("subPath") or spec.get("sub_path")
        if spec.get("readOnly") or spec.get("read_only"):
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def _port_variable(name: str) -> str:
    return "EASYAI_PORT_" + name.upper().replace("-", "_")


def _ports(task: TaskDescription) -> list[dict[str, Any]]:
    ports = []
    for name, number in task.ports.items():
        port_name = name.lower().replace("_", "-")[:15]
        if not PORT_NAME.match(port_name) or not re.search(r"[a-z]", port_name):
            port_name = f"p{number}"[:15]
        ports.append({"name": port_name, "containerPort": int(number), "protocol": "TCP"})
    return ports


def pull_secrets(cluster: ClusterSettings) -> list[dict[str, str]]:
    secrets = cluster.image_pull_secrets or []
    if isinstance(secrets, str):
        secrets = [s.strip() for s in secrets.split(",") if s.strip()]
    return [{"name": s["name"] if isinstance(s, dict) else str(s)} for s in secrets]


def pod_spec(
    cluster: ClusterSettings, job: JobDescription, task: TaskDescription, container: str, source: str
) -> dict[str, Any]:
    """The pod of one role (its first task stands for the role)."""
    nfs = bool(cluster.nfs_server and cluster.nfs_path)
    places = task.places_seen(job) if nfs else []
    container_paths = {p.variable: p.container_path for p in places if p.variable}
    main: dict[str, Any] = {
        "name": container,
        "image": task.image,
        "env": _env(job, task, source, container_paths, nfs),
        "resources": resources(cluster, job, task),
    }
    if tools.wrappable(task):
        main["command"] = tools.wrapped_command(task)
        if tools.job_hold(job) is not None:
            main["readinessProbe"] = copy.deepcopy(tools.HELD_PROBE)
    if task.working_dir:
        main["workingDir"] = task.working_dir
    if task.ports:
        main["ports"] = _ports(task)
    volumes, mounts = _extra_volumes(job)
    if nfs:
        volumes.insert(0, {"name": NFS_VOLUME, "nfs": {"server": cluster.nfs_server, "path": cluster.nfs_path}})
        mounts = _nfs_mounts(cluster, job, task, source) + _summary_mounts(job, task) + mounts
    main["volumeMounts"] = mounts + tools.mounts()
    spec: dict[str, Any] = {
        "initContainers": [tools.init_container(cluster)],
        "containers": [main],
        "volumes": volumes + tools.volumes(),
    }
    if job.node_selector:
        spec["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        spec["tolerations"] = [dict(t) for t in job.tolerations]
    if pull_secrets(cluster):
        spec["imagePullSecrets"] = pull_secrets(cluster)
    if uses_volcano(cluster):
        spec["schedulerName"] = "volcano"
        spec["priorityClassName"] = PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"])
    return spec


def _template(job: JobDescription, role: str, spec: dict[str, Any], extra_labels: dict | None = None) -> dict:
    return {
        "metadata": {
            "labels": {**job_labels(job), LABEL_ROLE: role, **(extra_labels or {})},
            "annotations": {**job_annotations(job), **tools.hold_annotations(job)},
        },
        "spec": spec,
    }


def _metadata(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    return {
        "name": job.job_id,
        "namespace": namespace_name(cluster, job.team),
        "labels": job_labels(job),
        "annotations": {**job_annotations(job), **tools.hold_annotations(job)},
    }
