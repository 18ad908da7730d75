"""Team provisioning on a Kubernetes cluster: a namespace, a ResourceQuota and (with Volcano) a queue per team.

Idempotent: every object is created, and on 409 brought up to date, so running it
again after a quota change (or twice by a redelivered task) converges. Reached through
``KubernetesBackend.provision_team``; which teams, and when, is ``clusters.services``'s business.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from clusters.backends.base import TeamDescription
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.client import ConflictError, Connection, NotFoundError

QUOTA_NAME = "easyai-quota"


def provision_team(conn: Connection, team: TeamDescription) -> None:
    """The team's namespace, its ResourceQuota from the team's quota here, and its Volcano queue when Volcano schedules."""
    cluster = conn.cluster
    core = conn.core
    quota = team.quota
    namespace = m.team_namespace(cluster, team.slug)
    name = namespace["metadata"]["name"]
    try:
        conn.call(f"create namespace {name}", core.create_namespace, namespace)
    except ConflictError:
        conn.call(f"label namespace {name}", core.patch_namespace, name, {"metadata": namespace["metadata"]})

    if quota is None:
        # No row means no limit: a quota left from an earlier row would still limit.
        try:
            conn.raw_json(f"delete quota {name}", core.delete_namespaced_resource_quota, QUOTA_NAME, name)
        except NotFoundError:
            pass
    else:
        body = m.team_quota(cluster, team.slug, quota.cpu_milli, quota.memory_bytes, quota.gpu)
        body["metadata"]["name"] = QUOTA_NAME
        try:
            conn.call(f"create quota {name}", core.create_namespaced_resource_quota, name, body)
        except ConflictError:
            current = conn.raw_json(f"read quota {name}", core.read_namespaced_resource_quota, QUOTA_NAME, name)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            conn.call(f"replace quota {name}", core.replace_namespaced_resource_quota, QUOTA_NAME, name, body)

    if m.uses_volcano(cluster):
        _ensure_priority_classes(conn)
        queue = m.team_queue(
            cluster,
            team.slug,
            quota.cpu_milli if quota else None,
            quota.memory_bytes if quota else None,
            quota.gpu if quota else None,
        )
        _apply_cluster_object(conn, m.QUEUE_GROUP, m.QUEUE_VERSION, m.QUEUE_PLURAL, queue)


def _apply_cluster_object(conn: Connection, group: str, version: str, plural: str, body: dict[str, Any]) -> None:
    """Create a cluster-scoped custom object, or replace its spec when it exists."""
    name = body["metadata"]["name"]
    custom = conn.custom
    try:
        conn.call(f"create {plural} {name}", custom.create_cluster_custom_object, group, version, plural, body)
    except ConflictError:
        current = conn.call(f"read {plural} {name}", custom.get_cluster_custom_object, group, version, plural, name)
        updated = {**current, "spec": body["spec"]}
        updated["metadata"] = {**current["metadata"], "labels": {**(current["metadata"].get("labels") or {}),
                                                                 **body["metadata"]["labels"]}}  # fmt: skip
        conn.call(f"replace {plural} {name}", custom.replace_cluster_custom_object, group, version, plural, name,
                  updated)  # fmt: skip


def _ensure_priority_classes(conn: Connection) -> None:
    """easyai-low/normal/high, which Volcano jobs and pods name; created once, never changed."""
    api = k8s.SchedulingV1Api(conn.api_client)
    for name in m.PRIORITY_VALUES:
        try:
            conn.call(f"create priority class {name}", api.create_priority_class, m.priority_class(name))
        except ConflictError:
            pass
