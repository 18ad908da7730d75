"""Web endpoints through an ingress: a ClusterIP Service per task and one Ingress per job that serves named
ports, when the cluster has an ingress host."""

from __future__ import annotations

import hashlib
from typing import Any

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.kubernetes.manifests.names import (
    DNS_SUBDOMAIN,
    ENDPOINTS_PREFIX,
    INGRESS_ANNOTATIONS,
    IPV4,
    LABEL_INDEX,
    LABEL_JOB_ID,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGED_BY,
    POD_FRAMEWORKS,
    TO_REPLICA_INDEX,
    TRAINING,
    VC_TASK_INDEX,
    ClusterSettings,
)
from clusters.backends.kubernetes.manifests.pods import _metadata, _ports


def ingress_address(cluster: ClusterSettings) -> str:
    """The cluster's ingress as the portal connects to it ("host" or "host:port"); "" when it has none."""
    return (getattr(cluster, "ingress_host", "") or "").strip()


def ingress_rule_host(cluster: ClusterSettings) -> str:
    """The host an Ingress rule names: the ingress address without its port, a DNS name."""
    address = ingress_address(cluster)
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    if port and not port.isdigit():
        raise ValueError(f"the cluster's ingress host {address!r} is not a host name with an optional :port")
    host = host.lower()
    if len(host) > 253 or not DNS_SUBDOMAIN.match(host) or IPV4.match(host):
        raise ValueError(
            f"the cluster's ingress host {address!r} must be a DNS name (an Ingress rule cannot name an IP address)"
        )
    return host


def endpoint_path(job_id: str, task_name: str, name: str) -> str:
    """The portal's path of a task's named endpoint, without its trailing slash (the Ingress path)."""
    return f"{ENDPOINTS_PREFIX}/{job_id}/{task_name}/{name}"


def service_name(job_id: str, task_name: str) -> str:
    """The Service of one task's endpoints: "{job}-{task}-ep", a hash of the task name when that is too long.

    Not "{job}-{task}": training-operator names its own per-replica Service so, and MASTER_ADDR and
    TF_CONFIG resolve through it.
    """
    name = f"{job_id}-{task_name}-ep"
    if len(name) <= 63:
        return name
    return f"{job_id}-ep-{hashlib.sha256(task_name.encode()).hexdigest()[:12]}"


def task_pod_selector(job: JobDescription, task: TaskDescription) -> dict[str, str]:
    """Labels that select exactly this task's pod: ours, and the index its operator writes on each pod."""
    selector = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB_ID: job.job_id, LABEL_ROLE: task.role}
    if job.framework in POD_FRAMEWORKS:
        selector[LABEL_INDEX] = str(task.index)
    elif job.framework in TRAINING:
        selector[TO_REPLICA_INDEX] = str(task.index)
    elif task.replicas > 1:
        selector[VC_TASK_INDEX] = str(task.index)
    return selector


def task_service(cluster: ClusterSettings, job: JobDescription, task: TaskDescription) -> dict[str, Any]:
    metadata = _metadata(cluster, job)
    metadata["name"] = service_name(job.job_id, task.name)
    metadata["labels"] = {**metadata["labels"], LABEL_ROLE: task.role, LABEL_INDEX: str(task.index)}
    ports = [
        {"name": port["name"], "port": port["containerPort"], "targetPort": port["containerPort"], "protocol": "TCP"}
        for port in _ports(task)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": task_pod_selector(job, task), "ports": ports},
    }


def job_ingress(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    """One Ingress for the job: a path per task and endpoint, to that task's Service."""
    paths = []
    for task in job.tasks:
        for (name, _number), port in zip(task.ports.items(), _ports(task), strict=True):
            paths.append(
                {
                    "path": endpoint_path(job.job_id, task.name, name),
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": service_name(job.job_id, task.name), "port": {"name": port["name"]}}
                    },
                }
            )
    metadata = _metadata(cluster, job)
    metadata["annotations"] = {**metadata["annotations"], **INGRESS_ANNOTATIONS}
    spec: dict[str, Any] = {"rules": [{"host": ingress_rule_host(cluster), "http": {"paths": paths}}]}
    ingress_class = ((getattr(cluster, "settings", None) or {}).get("ingress_class") or "").strip()
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def endpoint_objects(cluster: ClusterSettings, job: JobDescription) -> list[dict[str, Any]]:
    """A Service per task that serves named ports and the job's Ingress; none without an ingress host, and none
    for an app's run: the portal reaches it at its pod's address, and a route of the ingress would serve it to
    whoever reaches the ingress, past the app's visibility."""
    if not ingress_address(cluster) or not any(task.ports for task in job.tasks) or job.framework == "app":
        return []
    services = [task_service(cluster, job, task) for task in job.tasks if task.ports]
    return [*services, job_ingress(cluster, job)]
