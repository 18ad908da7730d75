"""What a job used over its life, read for its page's charts: each task's CPU, memory and GPU series at a
resolution that fits the job's age, and its efficiency (used ÷ requested) per resource. Reads only.

A series holds at most ``MAX_POINTS`` points per task. Raw samples are served while a task has no more than
that; past it (a long job, or one whose raw samples were already downsampled) the samples are grouped into
one-minute, one-hour or one-day points, the finest that fits the job's span. A grouped point is the
interval-weighted mean of CPU and GPU utilisation and the peak of memory and GPU memory (a limit is about
peaks), stamped with the end of its last sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DateTimeField, ExpressionWrapper, F, FloatField, Max, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from jobs import spec as job_spec
from jobs.models import Job, Task
from monitoring.models import JobUsage, UsageSample

MAX_POINTS = 1000

# (name, seconds, truncation), finest first: the grouping used when raw samples are too many.
GROUPINGS = (("minute", 60, TruncMinute), ("hour", 3600, TruncHour), ("day", 86400, TruncDay))

RESOURCES = ("cpu", "memory", "gpu")


@dataclass(frozen=True)
class Request:
    """What one task asked for: cores, bytes, GPUs."""

    cpu: float
    memory_bytes: int
    gpu: int


def task_requests(job: Job, tasks: list[Task]) -> dict[int, Request]:
    """Each task's request, from its role in the job's spec (task id -> Request)."""
    roles = job_spec.role_resources(job.spec) if job.spec.get("roles") else {}
    requests = {}
    for task in tasks:
        role = roles.get(task.role, {})
        requests[task.pk] = Request(role.get("cpu_milli", 0) / 1000, role.get("memory_bytes", 0), role.get("gpu", 0))
    return requests


def _span_seconds(job: Job, now: datetime) -> float:
    start = job.started_at or job.created_at
    end = job.finished_at or now
    return max((end - start).total_seconds(), 0.0)


def grouping_for(span_seconds: float, most_raw: int) -> tuple[str, int, Any]:
    """The resolution to serve: raw while every task has at most MAX_POINTS samples, else the finest grouping
    whose points over the job's span fit (a span past MAX_POINTS days is grouped by day and cut to the last)."""
    if most_raw <= MAX_POINTS:
        return "raw", 0, None
    for name, seconds, trunc in GROUPINGS:
        if span_seconds / seconds <= MAX_POINTS:
            return name, seconds, trunc
    return GROUPINGS[-1]


def _weighted(column: str) -> Sum:
    return Sum(F(column) * F("seconds"), output_field=FloatField())


def per_task_totals(job: Job) -> dict[int, dict[str, Any]]:
    """Per task: sample count and interval-weighted sums (one query), for the resolution and the efficiency."""
    rows = (
        UsageSample.objects.filter(job=job)
        .order_by()
        .values("task_id")
        .annotate(
            n=Count("id"),
            seconds_total=Sum("seconds"),
            cpu_seconds=_weighted("cpu_cores"),
            memory_seconds=_weighted("memory_bytes"),
            gpu_seconds=_weighted("gpu_util"),
            gpu_sampled_seconds=Sum("seconds", filter=Q(gpu_util__isnull=False)),
        )
    )
    return {row["task_id"]: row for row in rows}


def _points(job: Job, grouping: tuple[str, int, Any], after: datetime | None = None) -> dict[int, list[tuple]]:
    """task id -> [(at, cpu, memory, gpu_util, gpu_memory)], oldest first (raw: only those after ``after``)."""
    samples = UsageSample.objects.filter(job=job)
    by_task: dict[int, list[tuple]] = {}
    name, _seconds, trunc = grouping
    if trunc is None:
        if after is not None:
            samples = samples.filter(at__gt=after)
        rows = samples.order_by("at", "id").values_list(
            "task_id", "at", "cpu_cores", "memory_bytes", "gpu_util", "gpu_memory_bytes"
        )
        for task_id, *point in rows:
            by_task.setdefault(task_id, []).append(tuple(point))
        return by_task
    # A sample belongs to the minute (hour, day) its interval ends in, one ending on the boundary to the one
    # before: as retention.py stamps its points (at the end of their minute or hour).
    ends = ExpressionWrapper(F("at") - timedelta(microseconds=1), output_field=DateTimeField())
    rows = (
        samples.annotate(bucket=trunc(ends))
        .order_by()
        .values("task_id", "bucket")
        .annotate(
            end=Max("at"),
            seconds_total=Sum("seconds"),
            cpu_seconds=_weighted("cpu_cores"),
            memory_peak=Max("memory_bytes"),
            gpu_seconds=_weighted("gpu_util"),
            gpu_sampled_seconds=Sum("seconds", filter=Q(gpu_util__isnull=False)),
            gpu_memory_peak=Max("gpu_memory_bytes"),
        )
        .order_by("task_id", "bucket")
    )
    for row in rows:
        gpu_util = row["gpu_seconds"] / row["gpu_sampled_seconds"] if row["gpu_sampled_seconds"] else None
        cpu = row["cpu_seconds"] / row["seconds_total"] if row["seconds_total"] else 0.0
        by_task.setdefault(row["task_id"], []).append(
            (row["end"], cpu, row["memory_peak"], gpu_util, row["gpu_memory_peak"])
        )
    return by_task


def _ratio(used: float, requested: float) -> float | None:
    return used / requested if requested > 0 else None


def efficiency_from_samples(totals: dict[int, dict[str, Any]], requests: dict[int, Request]) -> dict[str, float | None]:
    """Used ÷ requested per resource over the sampled intervals (None: nothing requested or nothing sampled)."""
    used = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
    requested = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
    for task_id, row in totals.items():
        request = requests.get(task_id)
        if request is None or not row["seconds_total"]:
            continue
        if request.cpu:
            used["cpu"] += row["cpu_seconds"] or 0.0
            requested["cpu"] += request.cpu * row["seconds_total"]
        if request.memory_bytes:
            used["memory"] += row["memory_seconds"] or 0.0
            requested["memory"] += request.memory_bytes * row["seconds_total"]
        if request.gpu and row["gpu_sampled_seconds"]:
            # Utilisation is the mean over the task's GPUs, in percent.
            used["gpu"] += request.gpu * (row["gpu_seconds"] or 0.0) / 100
            requested["gpu"] += request.gpu * row["gpu_sampled_seconds"]
    return {resource: _ratio(used[resource], requested[resource]) for resource in RESOURCES}


def job_efficiency(
    job: Job,
    *,
    threshold: float,
    tasks: list[Task] | None = None,
    totals: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Each resource's efficiency: the job's accounting (JobUsage) where it has one, else worked from the samples;
    ``low`` names the resources under the threshold."""
    if tasks is None:
        tasks = list(job.tasks.all())
    if totals is None:
        totals = per_task_totals(job)
    requests = task_requests(job, tasks)
    accounting = JobUsage.objects.filter(job=job).values("cpu_efficiency", "memory_efficiency", "gpu_efficiency")
    accounted = accounting.first() or {}
    sampled = efficiency_from_samples(totals, requests)
    values: dict[str, float | None] = {}
    sources: dict[str, str | None] = {}
    for resource in RESOURCES:
        value = accounted.get(f"{resource}_efficiency")
        if value is not None:
            values[resource], sources[resource] = value, "accounting"
        else:
            values[resource] = sampled[resource]
            sources[resource] = "samples" if sampled[resource] is not None else None
    low = [resource for resource in RESOURCES if values[resource] is not None and values[resource] < threshold]
    return {"values": values, "sources": sources, "low": low, "threshold": threshold}


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def job_usage(
    job: Job, *, threshold: float, after: datetime | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The job's usage as its page's charts read it (JSON-ready): each task's request and series, the
    resolution served and the efficiency per resource. Four queries whatever the job's size.

    With ``after`` (the newest point a poller has) raw series hold only the samples since (``incremental``);
    grouped series are always whole, their last point growing as samples come in."""
    now = now or timezone.now()
    tasks = list(job.tasks.order_by("role", "index"))
    requests = task_requests(job, tasks)
    totals = per_task_totals(job)
    most_raw = max((row["n"] for row in totals.values()), default=0)
    grouping = grouping_for(_span_seconds(job, now), most_raw)
    incremental = after is not None and grouping[2] is None
    points = _points(job, grouping, after if incremental else None) if totals else {}
    series = []
    for task in tasks:
        request = requests[task.pk]
        task_points = points.get(task.pk, [])[-MAX_POINTS:]
        series.append(
            {
                "name": task.name,
                "state": task.state,
                "request": {"cpu": request.cpu, "memory_bytes": request.memory_bytes, "gpu": request.gpu},
                "t": [_ms(p[0]) for p in task_points],
                "cpu": [round(p[1], 4) for p in task_points],
                "memory": [p[2] for p in task_points],
                "gpu_util": [None if p[3] is None else round(p[3], 2) for p in task_points],
                "gpu_memory": [p[4] for p in task_points],
            }
        )
    has_gpu = job.gpu > 0 or any(row["gpu_sampled_seconds"] for row in totals.values())
    return {
        "job": job.public_id,
        "state": job.state,
        "resolution": {"name": grouping[0], "seconds": grouping[1]},
        "incremental": incremental,
        "max_points": MAX_POINTS,
        "has_gpu": has_gpu,
        "tasks": series,
        "efficiency": job_efficiency(job, threshold=threshold, tasks=tasks, totals=totals),
    }
