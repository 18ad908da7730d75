"""The home page's monitoring panels (teams.dashboard): the team's running and waiting jobs, today's usage
against its quota with the last day as a chart, each cluster's capacity and what is free, and recent failures.

Each panel reads a bounded number of rows in a fixed number of queries. A cluster's capacity is its backend's
answer (a Kubernetes API call), kept in the cache for CAPACITY_SECONDS so that a page view never waits on it
twice in a row; a backend that does not answer shows as unavailable.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, FloatField, Q, Sum
from django.db.models.functions import TruncHour
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.backends.contract.quantity import format_cpu, format_memory
from clusters.models import Cluster, Quota
from jobs.models import Job
from jobs.selectors import jobs_visible
from jobs.state import FINAL, HOLDS_RESOURCES, JobState
from monitoring.models import JobUsage, UsageSample
from teams.models import Team

log = logging.getLogger(__name__)

ACTIVE_SHOWN = 10  # running and waiting jobs listed (the counts cover all)
FAILURES_SHOWN = 5
FAILURE_DAYS = 7
CAPACITY_SECONDS = 30
WAITING = (JobState.QUEUED, JobState.UNKNOWN, JobState.PENDING)


def _percent(used: float, total: float) -> int | None:
    return min(100, round(100 * used / total)) if total else None


# --- running and waiting jobs ---------------------------------------------------------------------


def active_jobs(request: HttpRequest, team: Team) -> dict[str, Any]:
    """The team's running and waiting jobs the user may see, newest first, and how many of each (two queries)."""
    visible = jobs_visible(request.user).filter(team=team).exclude(state__in=FINAL)
    counts = visible.order_by().aggregate(
        running=Count("id", filter=Q(state=JobState.RUNNING)), waiting=Count("id", filter=Q(state__in=WAITING))
    )
    jobs = list(visible.select_related(None).select_related("owner", "cluster").order_by("-created_at")[:ACTIVE_SHOWN])
    for job in jobs:
        job.resources_text = _("%(cpu)s CPU, %(memory)s, %(gpu)s GPU") % {
            "cpu": format_cpu(job.cpu_milli),
            "memory": format_memory(job.memory_bytes),
            "gpu": job.gpu,
        }
    return {
        "jobs": jobs,
        "running": counts["running"] or 0,
        "waiting": counts["waiting"] or 0,
        "list_url": reverse("job-list"),
        "submit_url": reverse("job-submit"),
    }


# --- usage against quota ------------------------------------------------------------------------------


def quota_use(team: Team) -> list[dict[str, Any]]:
    """Per cluster where the team has a quota or holds resources: what its jobs hold now against the quota
    (jobs/quota.py's rule: jobs in HOLDS_RESOURCES count). Two queries."""
    held = {
        row["cluster_id"]: row
        for row in Job.objects.filter(team=team, state__in=HOLDS_RESOURCES)
        .order_by()
        .values("cluster_id")
        .annotate(cpu=Sum("cpu_milli"), memory=Sum("memory_bytes"), gpu=Sum("gpu"))
    }
    quotas = {quota.cluster_id: quota for quota in Quota.objects.filter(team=team).select_related("cluster")}
    names = {quota.cluster_id: quota.cluster.name for quota in quotas.values()}
    missing = set(held) - set(names)
    if missing:
        names.update(Cluster.objects.filter(pk__in=missing).values_list("pk", "name"))
    rows = []
    for cluster_id in sorted(names, key=names.get):
        quota = quotas.get(cluster_id)
        now = held.get(cluster_id, {"cpu": 0, "memory": 0, "gpu": 0})
        resources = []
        for key, label, used, limit, fmt in (
            ("cpu", _("CPU"), now["cpu"] or 0, quota.cpu_milli if quota else None, format_cpu),
            ("memory", _("memory"), now["memory"] or 0, quota.memory_bytes if quota else None, format_memory),
            ("gpu", _("GPU"), now["gpu"] or 0, quota.gpu if quota else None, str),
        ):
            resources.append(
                {
                    "key": key,
                    "label": label,
                    "used": fmt(used),
                    "limit": None if limit is None else fmt(limit),
                    "percent": None if limit is None else (_percent(used, limit) if limit else (100 if used else 0)),
                }
            )
        rows.append({"cluster": names[cluster_id], "has_quota": quota is not None, "resources": resources})
    return rows


def today_usage(team: Team) -> dict[str, Any]:
    """The team's accounting for the jobs of today (JobUsage rows of the day): requested and used hours, cost."""
    totals = JobUsage.objects.filter(team=team, day=timezone.localdate()).aggregate(
        core_requested=Sum("core_hours_requested"),
        core_used=Sum("core_hours_used"),
        gib_requested=Sum("gib_hours_requested"),
        gib_used=Sum("gib_hours_used"),
        gpu_requested=Sum("gpu_hours_requested"),
        gpu_used=Sum("gpu_hours_used"),
        cost=Sum("cost"),
    )
    rows = []
    for key, label in (("core", _("core-hours")), ("gib", _("GiB-hours")), ("gpu", _("GPU-hours"))):
        requested, used = totals[f"{key}_requested"] or 0.0, totals[f"{key}_used"] or 0.0
        rows.append(
            {
                "key": key,
                "label": label,
                "requested": round(requested, 2),
                "used": round(used, 2),
                "percent": _percent(used, requested),
            }
        )
    return {"rows": rows, "cost": totals["cost"]}


def last_day(team: Team, now=None) -> dict[str, Any]:
    """What the team's tasks used hour by hour over the last 24 hours: mean cores and GiB in use (one query)."""
    now = now or timezone.now()
    since = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    rows = (
        UsageSample.objects.filter(job__team=team, at__gt=since)
        .annotate(hour=TruncHour("at"))
        .order_by()
        .values("hour")
        .annotate(
            cpu_seconds=Sum(F("cpu_cores") * F("seconds"), output_field=FloatField()),
            memory_seconds=Sum(F("memory_bytes") * F("seconds"), output_field=FloatField()),
        )
        .order_by("hour")
    )
    by_hour = {row["hour"]: row for row in rows}
    hours = [since + timedelta(hours=i) for i in range(24)]
    return {
        "t": [round(hour.timestamp() * 1000) for hour in hours],
        "cpu": [round((by_hour[h]["cpu_seconds"] or 0) / 3600, 3) if h in by_hour else 0 for h in hours],
        "memory_gib": [
            round((by_hour[h]["memory_seconds"] or 0) / 3600 / 2**30, 3) if h in by_hour else 0 for h in hours
        ],
    }


# --- clusters ------------------------------------------------------------------------------------------


def _capacity(cluster: Cluster) -> dict[str, int] | None:
    key = f"monitoring:capacity:{cluster.pk}"
    cached = cache.get(key)
    if cached is not None:
        return cached or None  # {} remembers a backend that did not answer
    try:
        capacity = cluster.backend().capacity()
    except Exception:  # any backend failure shows as unavailable: the page must render
        log.warning("capacity of cluster %s unavailable", cluster.name, exc_info=True)
        cache.set(key, {}, CAPACITY_SECONDS)
        return None
    found = {
        "cpu_milli": capacity.cpu_milli,
        "memory_bytes": capacity.memory_bytes,
        "gpu": capacity.gpu,
        "free_cpu_milli": capacity.free_cpu_milli,
        "free_memory_bytes": capacity.free_memory_bytes,
        "free_gpu": capacity.free_gpu,
    }
    cache.set(key, found, CAPACITY_SECONDS)
    return found


def cluster_capacity() -> list[dict[str, Any]]:
    """Each enabled cluster's total and free CPU, memory and GPUs (one query; backends asked at most every
    CAPACITY_SECONDS)."""
    rows = []
    for cluster in Cluster.objects.filter(enabled=True).order_by("-is_default", "name"):
        capacity = _capacity(cluster) if cluster.healthy else None
        resources = []
        if capacity:
            for key, label, fmt in (
                ("cpu", _("CPU"), format_cpu),
                ("memory", _("memory"), format_memory),
                ("gpu", _("GPU"), str),
            ):
                total_key = {"cpu": "cpu_milli", "memory": "memory_bytes", "gpu": "gpu"}[key]
                total, free = capacity[total_key], capacity[f"free_{total_key}"]
                resources.append(
                    {
                        "key": key,
                        "label": label,
                        "total": fmt(total),
                        "free": fmt(free),
                        "used_percent": _percent(total - free, total),
                    }
                )
        rows.append(
            {
                "name": cluster.name,
                "kind": cluster.get_kind_display(),
                "healthy": cluster.healthy,
                "message": cluster.health_message,
                "resources": resources,
            }
        )
    return rows


# --- recent failures ------------------------------------------------------------------------------


def recent_failures(request: HttpRequest, team: Team) -> list[Job]:
    """The team's jobs that failed in the last FAILURE_DAYS days, newest first (one query)."""
    since = timezone.now() - timedelta(days=FAILURE_DAYS)
    return list(
        jobs_visible(request.user)
        .filter(team=team, state=JobState.FAILED, finished_at__gte=since)
        .select_related(None)
        .select_related("owner")
        .order_by("-finished_at")[:FAILURES_SHOWN]
    )


# --- the panels' contexts ---------------------------------------------------------------------------


def jobs_panel(request: HttpRequest, team: Team) -> dict[str, Any]:
    return active_jobs(request, team)


def usage_panel(request: HttpRequest, team: Team) -> dict[str, Any]:
    return {"quota": quota_use(team), "today": today_usage(team), "chart": last_day(team)}


def clusters_panel(request: HttpRequest, team: Team) -> dict[str, Any]:
    return {"clusters": cluster_capacity()}


def failures_panel(request: HttpRequest, team: Team) -> dict[str, Any]:
    return {"jobs": recent_failures(request, team), "days": FAILURE_DAYS, "list_url": reverse("job-list")}
