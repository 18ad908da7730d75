"""Reads about experiments and jobs, always through the permission module."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Prefetch, Q, QuerySet

from clusters.backends.contract.quantity import whole_number
from jobs.models import Experiment, Job, JobClusterEvent, JobEvent, Task
from jobs.state import JobState
from teams import permissions

ORDERINGS = {"created_at", "-created_at", "name", "-name", "state", "-state", "started_at", "-started_at"}
# Ids grow with creation time: ordering by id walks the team index instead of sorting the team's jobs.
_ORDER_BY = {"created_at": ("id",), "-created_at": ("-id",)}


def jobs_visible(user, *, detail: bool = False) -> QuerySet[Job]:
    """Jobs the user may see (deleted ones are gone for everyone but the admin)."""
    queryset = Job.objects.filter(deleted=False).select_related("team", "owner", "cluster", "experiment")
    if detail:
        queryset = queryset.select_related("pre_job", "rerun_of").prefetch_related(
            Prefetch("tasks", queryset=Task.objects.order_by("role", "index")),
            Prefetch("events", queryset=JobEvent.objects.select_related("actor").order_by("created_at", "id")),
        )
    return permissions.restrict(queryset, user)


def jobs_filtered(queryset: QuerySet[Job], params: Mapping[str, str]) -> QuerySet[Job]:
    """The list filters shared by the jobs page and the API."""
    # A page's related rows are fetched apart (four small queries), not joined: with joins MariaDB plans
    # the page from a small joined table and sorts all the team's jobs (~200 ms at 100,000 jobs); alone,
    # the jobs table is read newest first along its primary key and stops after one page.
    queryset = queryset.select_related(None).prefetch_related("team", "owner", "cluster", "experiment")
    if params.get("team"):
        queryset = queryset.filter(team__slug=params["team"])
    if params.get("experiment"):
        value = params["experiment"]
        number = whole_number(value)
        queryset = queryset.filter(
            Q(experiment__name=value) | Q(experiment_id=number) if number is not None else Q(experiment__name=value)
        )
    if params.get("owner"):
        queryset = queryset.filter(owner__username=params["owner"])
    if params.get("state"):
        states = [s.strip() for s in params["state"].split(",") if s.strip()]
        queryset = queryset.filter(state__in=states)
    if params.get("framework"):
        queryset = queryset.filter(framework=params["framework"])
    if params.get("cluster"):
        queryset = queryset.filter(cluster__name=params["cluster"])
    if params.get("q"):
        queryset = queryset.filter(Q(name__icontains=params["q"]) | Q(public_id=params["q"]))
    ordering = params.get("ordering") or "-created_at"
    if ordering not in ORDERINGS:
        raise ValueError(f"Unknown ordering {ordering!r}; one of {', '.join(sorted(ORDERINGS))}.")
    return queryset.order_by(*_ORDER_BY.get(ordering, (ordering, "-id" if ordering.startswith("-") else "id")))


def experiments_visible(user) -> QuerySet[Experiment]:
    return permissions.restrict(Experiment.objects.select_related("team", "owner"), user)


CLUSTER_EVENTS_SHOWN = 100


def cluster_events_of(job: Job) -> list[JobClusterEvent]:
    """The job's latest cluster events (Kubernetes Events on its pods and objects), oldest first."""
    latest = job.cluster_events.select_related("task").order_by("-at", "-id")[:CLUSTER_EVENTS_SHOWN]
    return list(reversed(latest))


def why_waiting(job: Job) -> str:
    """The "why is my job waiting" line: the backend's reason, the team's quota, the cluster's capacity."""
    if job.state not in (JobState.QUEUED, JobState.PENDING, JobState.UNKNOWN):
        return ""
    from clusters.backends.base import WAITING_REASONS, BackendError
    from clusters.backends.contract.quantity import format_cpu, format_memory
    from jobs import quota

    parts = []
    if job.message and (job.reason in WAITING_REASONS or job.reason in {"submit_retry", "unschedulable"}):
        parts.append(job.message)
    if used := quota.usage_line(job):
        parts.append(used)
    try:
        capacity = job.cluster.backend().capacity()
        parts.append(
            f"cluster free: {format_cpu(capacity.free_cpu_milli)} of {format_cpu(capacity.cpu_milli)} CPU, "
            f"{format_memory(capacity.free_memory_bytes)} of {format_memory(capacity.memory_bytes)} memory, "
            f"{capacity.free_gpu} of {capacity.gpu} GPU"
        )
    except (BackendError, NotImplementedError, OSError) as exc:
        parts.append(f"cluster capacity unknown: {exc}")
    return "; ".join(parts)
