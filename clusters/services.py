"""Changes to clusters. Saving a Kubernetes cluster that teams must be provisioned on again enqueues it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from clusters.models import Cluster

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
