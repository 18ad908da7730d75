"""Team provisioning on Kubernetes clusters: a namespace, a ResourceQuota and (with Volcano) a queue per team.

Idempotent: every object is created, and on 409 brought up to date, so running it
again after a quota change (or twice by a redelivered task) converges.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kubernetes import client as k8s

from clusters.backends.base import BackendError
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.client import ConflictError, Connection, NotFoundError
from clusters.models import Cluster

if TYPE_CHECKING:
    from teams.models import Team

log = logging.getLogger(__name__)

QUOTA_NAME = "easyai-quota"


def team_changed(team_id: int) -> None:
    """A team or one of its quotas changed (call on commit): re-provision it on every Kubernetes cluster, in a worker."""
    from django_q.tasks import async_task

    async_task("clusters.tasks.provision_team_task", team_id, task_name=f"provision team {team_id}")


def kubernetes_clusters() -> list[Cluster]:
    return list(Cluster.objects.filter(kind=Cluster.Kind.KUBERNETES, enabled=True))


def provision_team_everywhere(team_id: int) -> dict[str, str]:
    """Provision the team on each enabled Kubernetes cluster: cluster name -> error ("" when done)."""
    from teams.models import Team

    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return {}  # deleted since: its namespaces stay (they may hold running work); an admin removes them
    results: dict[str, str] = {}
    for cluster in kubernetes_clusters():
        try:
            provision_team(cluster, team)
            results[cluster.name] = ""
        except BackendError as exc:
            log.warning("provisioning team %s on %s failed: %s", team.slug, cluster.name, exc)
            results[cluster.name] = str(exc)
    return results


def provision_cluster(cluster: Cluster) -> dict[str, str]:
    """Every team on one cluster (a new cluster, or after its prefix or scheduler changed): slug -> error."""
    from teams.models import Team

    results: dict[str, str] = {}
    for team in Team.objects.all():
        try:
            provision_team(cluster, team)
            results[team.slug] = ""
        except BackendError as exc:
            results[team.slug] = str(exc)
    return results


def provision_team(cluster: Cluster, team: Team) -> None:
    """The team's namespace, its ResourceQuota from the team's Quota here, and its Volcano queue when Volcano schedules."""
    from teams.models import Quota

    conn = Connection(cluster)
    core = conn.core
    quota = Quota.objects.filter(team=team, cluster=cluster).first()
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
