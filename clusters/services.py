"""Changes to clusters: saving one, provisioning teams on them, and recording what a backend learnt of its health.

Saving a Kubernetes cluster that teams must be provisioned on again enqueues it. A team or quota change
reaches provisioning through the ``teams.signals.team_changed`` signal (connected in ``ClustersConfig.ready``).
Backends never write ``Cluster`` rows: they report health here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from clusters.backends.base import BackendError, TeamDescription, TeamQuota
from clusters.models import Cluster, Quota

if TYPE_CHECKING:
    from teams.models import Team

log = logging.getLogger(__name__)

# What decides where a team's namespace, quota and queue live, and whether there is a Volcano queue at all.
# The kubeconfig and in-cluster flag are here too: a new one may point at another cluster.
PROVISIONING_FIELDS = ("kind", "enabled", "namespace_prefix", "scheduler", "kubeconfig_encrypted", "in_cluster")


def needs_provisioning(before: dict[str, Any] | None, cluster: Cluster) -> bool:
    """Whether every team must be provisioned on the cluster: it is an enabled Kubernetes cluster that is new,
    newly enabled (or newly Kubernetes), or whose namespace prefix, scheduler or connection changed."""
    if cluster.kind != Cluster.Kind.KUBERNETES or not cluster.enabled:
        return False
    if before is None:
        return True
    return any(before[name] != getattr(cluster, name) for name in PROVISIONING_FIELDS)


def cluster_provision_later(*, cluster_id: int, name: str) -> None:
    """Enqueue provisioning of every team on the cluster, after commit; a worker does it, nobody waits on it."""
    from django_q.tasks import async_task

    # robust: the cluster row is already committed; a broker hiccup must not turn the save into an error
    # (the admin's "Provision every team" action and the next team change run it again).
    transaction.on_commit(
        lambda: async_task("clusters.tasks.provision_cluster_task", cluster_id, task_name=f"provision {name}"),
        robust=True,
    )


@transaction.atomic
def cluster_save(*, cluster: Cluster) -> bool:
    """Validate and save a cluster; True when provisioning of every team on it was enqueued."""
    cluster.full_clean()
    before = None
    if cluster.pk is not None:
        before = Cluster.objects.select_for_update().filter(pk=cluster.pk).values(*PROVISIONING_FIELDS).first()
    cluster.save()
    if not needs_provisioning(before, cluster):
        return False
    cluster_provision_later(cluster_id=cluster.pk, name=cluster.name)
    return True


# --- quotas ------------------------------------------------------------------------


@transaction.atomic
def quota_save(*, quota: Quota) -> Quota:
    """Save a team's quota on one cluster and let provisioning apply it."""
    from teams.services import team_notify_changed

    quota.full_clean()
    quota.save()
    team_notify_changed(team_id=quota.team_id)
    return quota


@transaction.atomic
def quota_delete(*, quota: Quota) -> None:
    """Remove a team's quota on one cluster (no row means no limit)."""
    from teams.services import team_notify_changed

    team_id = quota.team_id
    quota.delete()
    team_notify_changed(team_id=team_id)


# --- provisioning teams -------------------------------------------------------------


def team_changed_received(sender: Any, *, team_id: int, **kwargs: Any) -> None:
    """``teams.signals.team_changed`` (sent on commit): re-provision the team on every cluster, in a worker."""
    from django_q.tasks import async_task

    async_task("clusters.tasks.provision_team_task", team_id, task_name=f"provision team {team_id}")


def provisioned_clusters() -> list[Cluster]:
    """The clusters where a team has objects of its own (namespace, quota, queue): the enabled Kubernetes ones."""
    return list(Cluster.objects.filter(kind=Cluster.Kind.KUBERNETES, enabled=True))


def team_description(*, cluster: Cluster, team: Team) -> TeamDescription:
    quota = Quota.objects.filter(team=team, cluster=cluster).first()
    limits = TeamQuota(quota.cpu_milli, quota.memory_bytes, quota.gpu) if quota else None
    return TeamDescription(slug=team.slug, quota=limits)


def team_provision(*, cluster: Cluster, team: Team) -> None:
    """Bring the team's place on the cluster up to date through its backend; raises BackendError."""
    cluster.backend().provision_team(team_description(cluster=cluster, team=team))


def team_provision_everywhere(*, team_id: int) -> dict[str, str]:
    """Provision the team on each cluster that keeps teams' objects: cluster name -> error ("" when done)."""
    from teams.models import Team

    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return {}  # deleted since: its namespaces stay (they may hold running work); an admin removes them
    results: dict[str, str] = {}
    for cluster in provisioned_clusters():
        try:
            team_provision(cluster=cluster, team=team)
            results[cluster.name] = ""
        except BackendError as exc:
            log.warning("provisioning team %s on %s failed: %s", team.slug, cluster.name, exc)
            results[cluster.name] = str(exc)
    return results


def cluster_provision_teams(*, cluster: Cluster) -> dict[str, str]:
    """Every team on one cluster (a new cluster, or after its prefix or scheduler changed): slug -> error."""
    from teams.models import Team

    results: dict[str, str] = {}
    for team in Team.objects.all():
        try:
            team_provision(cluster=cluster, team=team)
            results[team.slug] = ""
        except BackendError as exc:
            results[team.slug] = str(exc)
    return results


# --- health, as the backends report it -------------------------------------------------


def cluster_mark_unhealthy(*, cluster_id: int, reason: str) -> None:
    """The cluster refused us (401/403): recorded with the reason, shown to operators."""
    Cluster.objects.filter(pk=cluster_id).update(
        healthy=False, health_message=reason[:2000], health_checked_at=timezone.now()
    )


def cluster_mark_healthy(*, cluster_id: int) -> bool:
    """The cluster answers again; True when it was recorded unhealthy until now."""
    return bool(
        Cluster.objects.filter(pk=cluster_id, healthy=False).update(
            healthy=True, health_message="", health_checked_at=timezone.now()
        )
    )


def cluster_record_health(*, cluster_id: int, healthy: bool, message: str, server_version: str | None = None) -> None:
    """A connection check's result; ``server_version`` None keeps the one recorded."""
    fields: dict[str, Any] = {"healthy": healthy, "health_message": message[:2000], "health_checked_at": timezone.now()}
    if server_version is not None:
        fields["server_version"] = server_version[:50]
    Cluster.objects.filter(pk=cluster_id).update(**fields)
