"""The sampler: one pass per cluster with running tasks, every EASYAI_USAGE_SAMPLE_SECONDS (monitoring/schedule.py).

A pass makes one backend call (``usage(job_ids)``, the UsageBackend protocol of clusters/backends/base.py) for
all of the cluster's running tasks and writes their samples in one insert. Where the CPU rate is worked out: a
backend that reads counters (the local one: a process tree's CPU seconds) gives ``cpu_seconds_total``, and the
pass divides its growth since the task's previous reading by the seconds between them; a backend that asks
something which averages already (Prometheus's rate() on Kubernetes) gives ``cpu_cores``. The previous readings
are kept in the shared cache, one entry per cluster (``metrics.latest_readings``), which /metrics also reads to export
the local tasks' counters under cAdvisor's names. A task's first reading covers its life so far (CPU seconds
since it started over the seconds since then); a counter that fell (a process of the task ended unreaped)
counts as a reset, as rate() counts one: its whole value is the growth.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.dispatch import Signal

from clusters.backends.base import TaskUsage, UsageBackend
from clusters.models import Cluster
from jobs.models import Task
from jobs.state import HOLDS_RESOURCES
from monitoring import metrics
from monitoring.models import Resolution, UsageSample

log = logging.getLogger(__name__)

# Samples were written for a cluster. sender: the Cluster class; cluster: the Cluster; samples: the UsageSample
# rows just made (with their task_id and job_id), for apps that act on what tasks use (accounting, alerts).
samples_recorded = Signal()


def _running_tasks(cluster: Cluster) -> list[dict[str, Any]]:
    return list(
        Task.objects.filter(job__cluster=cluster, job__state__in=HOLDS_RESOURCES, state=Task.State.RUNNING)
        .order_by()
        .values("pk", "job_id", "job__public_id", "role", "index", "started_at")
    )


def _cpu(
    reading: TaskUsage, before: dict[str, Any] | None, started_at: datetime | None, interval: float
) -> tuple[float | None, float]:
    """(cores, seconds covered) of a reading; cores None when it cannot tell yet."""
    at = reading.at.timestamp()
    if reading.cpu_seconds_total is not None:
        total = reading.cpu_seconds_total
        if before and before.get("cpu_total") is not None and at > before["at"]:
            grown = total - before["cpu_total"]
            seconds = at - before["at"]
            return (total if grown < 0 else grown) / seconds, seconds
        if started_at is not None and at > started_at.timestamp():
            seconds = at - started_at.timestamp()
            return total / seconds, seconds
        return None, 0.0
    if reading.cpu_cores is not None:
        seconds = at - before["at"] if before and at > before["at"] else interval
        return max(0.0, reading.cpu_cores), seconds
    return None, 0.0


def sample_cluster(cluster: Cluster) -> dict[str, Any]:
    """One pass over a cluster's running tasks: a UsageSample per task measured (see the module docstring)."""
    began, cpu_began = time.perf_counter(), time.process_time()
    tasks = _running_tasks(cluster)
    result: dict[str, Any] = {"tasks": len(tasks), "samples": 0}
    if not tasks:
        cache.delete(metrics.latest_key(cluster.pk))
        return result
    backend = cluster.backend()
    if not isinstance(backend, UsageBackend):
        return result
    try:
        readings = backend.usage(sorted({t["job__public_id"] for t in tasks}))
    except Exception as exc:  # a cluster that cannot tell now: no samples this pass, never a failed task queue
        log.warning("usage of cluster %s not sampled: %s", cluster.name, exc)
        metrics.record_pass("usage", cluster, time.perf_counter() - began, failed=True)
        result["error"] = str(exc)
        return result

    by_name = {(t["job__public_id"], f"{t['role']}-{t['index']}"): t for t in tasks}
    per_job: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        per_job.setdefault(task["job__public_id"], []).append(task)
    previous = (cache.get(metrics.latest_key(cluster.pk)) or {}).get("tasks", {})
    interval = settings.EASYAI_USAGE_SAMPLE_SECONDS
    samples: list[UsageSample] = []
    latest: dict[str, dict[str, Any]] = {}
    for reading in readings:
        task = by_name.get((reading.job_id, reading.task))
        if task is None and not reading.task and len(per_job.get(reading.job_id, ())) == 1:
            task = per_job[reading.job_id][0]  # the one pod of a single-task job
        if task is None:
            continue
        key = str(task["pk"])
        cores, seconds = _cpu(reading, previous.get(key), task["started_at"], interval)
        latest[key] = {
            "at": reading.at.timestamp(),
            "cpu_total": reading.cpu_seconds_total,
            "cpu_cores": cores,
            "memory_bytes": reading.memory_bytes,
            "gpu_util": reading.gpu_util,
            "gpu_memory_bytes": reading.gpu_memory_bytes,
            "labels": reading.labels,
        }
        if cores is not None and seconds > 0:
            samples.append(
                UsageSample(
                    task_id=task["pk"],
                    job_id=task["job_id"],
                    at=reading.at.astimezone(UTC),
                    seconds=seconds,
                    resolution=Resolution.RAW,
                    cpu_cores=cores,
                    memory_bytes=max(0, int(reading.memory_bytes)),
                    gpu_util=reading.gpu_util,
                    gpu_memory_bytes=reading.gpu_memory_bytes,
                )
            )
    if samples:
        UsageSample.objects.bulk_create(samples, batch_size=500)
    # Kept a few passes long: /metrics stops exporting a cluster's tasks soon after sampling stops.
    cache.set(metrics.latest_key(cluster.pk), {"at": time.time(), "tasks": latest}, timeout=max(60, 6 * interval))
    result["samples"] = len(samples)
    result["cpu_seconds"] = time.process_time() - cpu_began
    metrics.record_pass("usage", cluster, time.perf_counter() - began, failed=False)
    if samples:
        samples_recorded.send(Cluster, cluster=cluster, samples=samples)
    return result
