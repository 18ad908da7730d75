"""Team quotas, in one place: what a team may use on a cluster, what it uses now, and whether a job fits.

A quota is per team and cluster (``clusters.models.Quota``); no row means no limit. Usage is the sum of the
resources of the team's jobs on that cluster in ``HOLDS_RESOURCES`` (unknown, pending, running): an
unknown job was handed to the backend, which may have placed it already, so it counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FilteredRelation, Q, QuerySet, Sum
from django.utils.translation import gettext as _

from clusters.backends.contract.quantity import format_cpu, format_memory
from clusters.models import Cluster, Quota
from jobs.models import Job
from jobs.state import HOLDS_RESOURCES
from teams.prepared import PreparedRead, first_of
from teams.quota_usage import Held


@dataclass(frozen=True)
class Usage:
    """Resources held at once: millicores, bytes, GPUs."""

    cpu_milli: int = 0
    memory_bytes: int = 0
    gpu: int = 0


def quota_for(*, team_id: int, cluster_id: int) -> Quota | None:
    """The team's quota on the cluster, or None when it has no limit there."""
    return Quota.objects.filter(team_id=team_id, cluster_id=cluster_id).first()


def with_team_quota(clusters: QuerySet[Cluster], team_id: int) -> QuerySet[Cluster]:
    """Clusters read with the team's quota on each in the same query, one outer join (quota_of reads it back)."""
    return clusters.annotate(
        team_quota=FilteredRelation("quotas", condition=Q(quotas__team_id=team_id)),
        team_quota_id=F("team_quota__id"),
        team_quota_cpu=F("team_quota__cpu_milli"),
        team_quota_memory=F("team_quota__memory_bytes"),
        team_quota_gpu=F("team_quota__gpu"),
    )


@PreparedRead
def _default_cluster(team_id: int):
    return first_of(with_team_quota(Cluster.objects.filter(enabled=True), team_id).order_by("-is_default", "pk"))


@PreparedRead
def _cluster_named(team_id: int, name: str):
    return first_of(with_team_quota(Cluster.objects.filter(name=name), team_id))


def cluster_with_team_quota(team_id: int, name: str = "") -> Cluster | None:
    """The cluster of that name, or the default enabled one (else the first enabled), read with the team's quota
    on it (quota_of reads it back); one query, compiled once per connection (every submit makes it)."""
    return _cluster_named.first(team_id=team_id, name=name) if name else _default_cluster.first(team_id=team_id)


def quota_of(cluster: Cluster, team_id: int) -> Quota | None:
    """The team's quota on a cluster read by with_team_quota (None: no limit there)."""
    if cluster.team_quota_id is None:
        return None
    return Quota(
        pk=cluster.team_quota_id,
        team_id=team_id,
        cluster_id=cluster.pk,
        cpu_milli=cluster.team_quota_cpu,
        memory_bytes=cluster.team_quota_memory,
        gpu=cluster.team_quota_gpu,
    )


def has_quota(*, team_id: int, cluster_id: int) -> bool:
    return Quota.objects.filter(team_id=team_id, cluster_id=cluster_id).exists()


def team_usage(*, team_id: int, cluster_id: int, exclude_job_id: int | None = None) -> Usage:
    """What the team's jobs hold on the cluster now (optionally leaving one job out)."""
    jobs = Job.objects.filter(team_id=team_id, cluster_id=cluster_id, state__in=HOLDS_RESOURCES)
    if exclude_job_id is not None:
        jobs = jobs.exclude(pk=exclude_job_id)
    used = jobs.aggregate(cpu=Sum("cpu_milli"), memory=Sum("memory_bytes"), gpu=Sum("gpu"))
    return Usage(used["cpu"] or 0, used["memory"] or 0, used["gpu"] or 0)


def never_fits(quota: Quota, cluster_name: str, cpu_milli: int, memory_bytes: int, gpu: int) -> list[str]:
    """Why a job of this size could never run within the quota, however idle the team is (empty: it could)."""
    problems = []
    if cpu_milli > quota.cpu_milli:
        problems.append(
            _("needs %(need)s CPU, the team's quota on %(cluster)s is %(quota)s CPU")
            % {"need": format_cpu(cpu_milli), "cluster": cluster_name, "quota": format_cpu(quota.cpu_milli)}
        )
    if memory_bytes > quota.memory_bytes:
        problems.append(
            _("needs %(need)s memory, the team's quota on %(cluster)s is %(quota)s")
            % {"need": format_memory(memory_bytes), "cluster": cluster_name, "quota": format_memory(quota.memory_bytes)}
        )
    if gpu > quota.gpu:
        problems.append(
            _("needs %(need)s GPU, the team's quota on %(cluster)s is %(quota)s")
            % {"need": gpu, "cluster": cluster_name, "quota": quota.gpu}
        )
    return problems


def wait_reason(job: Job) -> str:
    """Why a queued job waits for its team's quota, or "" when it fits now (or the team has no quota there)."""
    quota = quota_for(team_id=job.team_id, cluster_id=job.cluster_id)
    if quota is None:
        return ""
    used = team_usage(team_id=job.team_id, cluster_id=job.cluster_id, exclude_job_id=job.pk)
    if used.cpu_milli + job.cpu_milli > quota.cpu_milli:
        free = format_cpu(max(quota.cpu_milli - used.cpu_milli, 0))
        return f"team quota: needs {format_cpu(job.cpu_milli)} CPU, {free} of {format_cpu(quota.cpu_milli)} CPU free"
    if used.memory_bytes + job.memory_bytes > quota.memory_bytes:
        return (
            f"team quota: needs {format_memory(job.memory_bytes)} memory, "
            f"{format_memory(max(quota.memory_bytes - used.memory_bytes, 0))} of {format_memory(quota.memory_bytes)} free"
        )
    if used.gpu + job.gpu > quota.gpu:
        return f"team quota: needs {job.gpu} GPU, {max(quota.gpu - used.gpu, 0)} of {quota.gpu} free"
    return ""


def usage_line(job: Job) -> str:
    """The "team quota used" part of why a job waits, or "" when the team has no quota on the job's cluster."""
    quota = quota_for(team_id=job.team_id, cluster_id=job.cluster_id)
    if quota is None:
        return ""
    used = team_usage(team_id=job.team_id, cluster_id=job.cluster_id)
    return (
        f"team quota used: {format_cpu(used.cpu_milli)} of {format_cpu(quota.cpu_milli)} CPU, "
        f"{format_memory(used.memory_bytes)} of {format_memory(quota.memory_bytes)} memory, "
        f"{used.gpu} of {quota.gpu} GPU"
    )


def team_held(team) -> dict[int, Held]:
    """What the team's jobs hold now on each cluster, by cluster id (one query): the team page's "used"."""
    rows = (
        Job.objects.filter(team=team, state__in=HOLDS_RESOURCES)
        .order_by()
        .values("cluster_id")
        .annotate(cpu=Sum("cpu_milli"), memory=Sum("memory_bytes"), gpu=Sum("gpu"))
    )
    return {row["cluster_id"]: Held(row["cpu"] or 0, row["memory"] or 0, row["gpu"] or 0) for row in rows}
