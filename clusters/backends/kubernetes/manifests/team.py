"""A team's objects on a cluster (provisioning): its namespace, ResourceQuota, Volcano queue, and the priority
classes."""

from __future__ import annotations

from typing import Any

from clusters.backends.kubernetes.manifests.names import (
    LABEL_MANAGED_BY,
    LABEL_TEAM,
    MANAGED_BY,
    PRIORITY_VALUES,
    QUEUE_GROUP,
    QUEUE_VERSION,
    ClusterSettings,
    namespace_name,
)
from clusters.backends.kubernetes.manifests.pods import _quantity_cpu


def team_namespace(cluster: ClusterSettings, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace_name(cluster, team), "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team}},
    }


def quota_hard(cluster: ClusterSettings, cpu_milli: int, memory_bytes: int, gpu: int) -> dict[str, str]:
    return {
        "requests.cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
        "limits.cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
        "requests.memory": str(memory_bytes),
        "limits.memory": str(memory_bytes),
        f"requests.{cluster.gpu_resource_name}": str(gpu),
    }


def team_quota(cluster: ClusterSettings, team: str, cpu_milli: int, memory_bytes: int, gpu: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "easyai-quota",
            "namespace": namespace_name(cluster, team),
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team},
        },
        "spec": {"hard": quota_hard(cluster, cpu_milli, memory_bytes, gpu)},
    }


def team_queue(
    cluster: ClusterSettings, team: str, cpu_milli: int | None, memory_bytes: int | None, gpu: int | None
) -> dict[str, Any]:
    """A Volcano queue named after the namespace; its capability is the team's quota (none: no cap)."""
    spec: dict[str, Any] = {"weight": 1, "reclaimable": True}
    if cpu_milli is not None:
        spec["capability"] = {
            "cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
            "memory": str(memory_bytes or 0),
            cluster.gpu_resource_name: str(gpu or 0),
        }
    return {
        "apiVersion": f"{QUEUE_GROUP}/{QUEUE_VERSION}",
        "kind": "Queue",
        "metadata": {"name": namespace_name(cluster, team), "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team}},
        "spec": spec,
    }


def priority_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name, "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
        "value": PRIORITY_VALUES[name],
        "globalDefault": False,
        "description": f"EasyAI jobs of priority {name.removeprefix('easyai-')}",
    }
