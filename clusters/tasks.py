"""django-q2 task functions for clusters: thin, idempotent, they take ids and reload."""

from __future__ import annotations

from clusters import services


def provision_team_task(team_id: int) -> dict[str, str]:
    """Provision a team on every enabled Kubernetes cluster; raises when a cluster failed, so the task shows failed."""
    results = services.team_provision_everywhere(team_id=team_id)
    failed = {name: error for name, error in results.items() if error}
    if failed:
        raise RuntimeError("; ".join(f"{name}: {error}" for name, error in failed.items()))
    return results


def provision_cluster_task(cluster_id: int) -> dict[str, str]:
    """Provision every team on one cluster."""
    from clusters.models import Cluster

    cluster = Cluster.objects.filter(pk=cluster_id, kind=Cluster.Kind.KUBERNETES).first()
    return services.cluster_provision_teams(cluster=cluster) if cluster else {}
