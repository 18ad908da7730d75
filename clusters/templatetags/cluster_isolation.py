"""``{% unisolated_clusters as found %}``: the enabled local clusters whose tasks are not isolated, and why."""

from __future__ import annotations

from django import template

from clusters.models import Cluster

register = template.Library()


@register.simple_tag
def unisolated_clusters() -> list[tuple[str, str, bool]]:
    """(name, why, whether only platform admins may submit there) for each such cluster."""
    found = []
    for cluster in Cluster.objects.filter(kind=Cluster.Kind.LOCAL, enabled=True).order_by("name"):
        problem = cluster.isolation_problem
        if problem:
            found.append((cluster.name, problem, not cluster.unisolated_for_everyone))
    return found
