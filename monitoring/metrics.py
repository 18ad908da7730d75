"""``/metrics``: what the local tasks use, under cAdvisor's and DCGM's names, and the portal's own health, for
Prometheus (prometheus-client's text format).

The local tasks' series carry the labels a pod of the same task has on Kubernetes (``namespace``: the team's
namespace, ``pod``: ``{job}-{role}-{index}``, ``container``), so one Prometheus, one set of queries and one
dashboard serve both backends: the Kubernetes backend's usage path (clusters/backends/kubernetes/usage.py)
reads a local job back from a Prometheus that scrapes this page as it reads a pod from cAdvisor. They are the
sampler's latest readings (monitoring/sampler.py), with the time each was taken, as cAdvisor stamps its own.

The portal's health is read when Prometheus asks, from the database and the shared cache, so every process
(the portal, the workers that run sync and sampling passes, the clock) is counted whichever process answers:

- ``easyai_jobs{state,team,cluster}``: jobs (not deleted) by state;
- ``easyai_queue_waiting_oldest_seconds{cluster}``: how long the longest-waiting job (queued, unknown,
  pending) has waited; ``easyai_queue_wait_seconds{cluster,quantile}``: submit to running, over the jobs that
  started in the last hour;
- ``easyai_sync_pass_seconds{cluster}`` (a histogram) and ``easyai_sync_pass_failures_total{cluster}``: the
  sync passes, recorded by the worker that ran each (``jobs.signals.sync_pass_finished``);
  ``easyai_usage_pass_seconds`` and ``easyai_usage_pass_failures_total``: the sampler's passes, the same way;
- ``easyai_backend_errors{cluster,operation}``: jobs whose last submit or stop the backend failed, retrying;
  ``easyai_cluster_healthy{cluster}``;
- ``easyai_worker_queue_depth``: tasks waiting in django-q2's queue;
- ``easyai_shell_sessions_open``: shell sockets open (the audit rows not closed);
  ``easyai_websockets_open{origin}``: every websocket this process holds open now, the portal's (logs,
  shells) and the endpoint origin's (notebooks' kernels, apps), counted by the ASGI entry (``socket_opened``);
- the answering process's own ``process_*`` figures.

Closed to the world (``refused``): a caller must send ``Authorization: Bearer $EASYAI_METRICS_TOKEN``; without
a token set, only loopback callers are answered, and a request relayed by a proxy (it carries
X-Forwarded-For, X-Real-IP or Forwarded) is not loopback's own.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from clusters.models import Cluster
from jobs.models import Job, ShellSession
from jobs.state import JobState

log = logging.getLogger(__name__)

PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PASS_KINDS = ("sync", "usage")
WAITING = (JobState.QUEUED, JobState.UNKNOWN, JobState.PENDING)
QUANTILES = (0.5, 0.9, 0.99)
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


# --- what the workers record, in the shared cache ---------------------------------------------------


def latest_key(cluster_pk: int) -> str:
    return f"easyai:usage:latest:{cluster_pk}"


def latest_readings(cluster_pks: list[int]) -> dict[int, dict[str, Any]]:
    """Each cluster's latest usage readings, as the sampler's last pass left them: {"at": ts, "tasks": {task pk:
    reading}}. A reading: at (a timestamp), cpu_total (the counter; None from a backend that gives a rate),
    cpu_cores, memory_bytes, gpu_util, gpu_memory_bytes, labels (namespace, pod, container, as a pod has them).
    """
    found = cache.get_many([latest_key(pk) for pk in cluster_pks])
    return {pk: found[latest_key(pk)] for pk in cluster_pks if latest_key(pk) in found}


def _pass_key(kind: str, cluster_pk: int) -> str:
    return f"easyai:metrics:{kind}-pass:{cluster_pk}"


def record_pass(kind: str, cluster: Cluster, seconds: float, *, failed: bool) -> None:
    """Count one pass (``kind``: sync or usage) of a cluster in the shared cache, where /metrics reads it.

    One pass of a kind runs per cluster at a time (the clock enqueues the next after the last), so the
    read-modify-write does not race itself.
    """
    key = _pass_key(kind, cluster.pk)
    stats = cache.get(key) or {"count": 0, "sum": 0.0, "failures": 0, "buckets": [0] * len(PASS_BUCKETS)}
    stats["cluster"] = cluster.name
    stats["count"] += 1
    stats["sum"] += seconds
    stats["failures"] += int(failed)
    for i, bound in enumerate(PASS_BUCKETS):
        if seconds <= bound:
            stats["buckets"][i] += 1
    cache.set(key, stats, timeout=None)


def sync_pass_received(sender: Any, *, cluster: Cluster, seconds: float, failed: bool, **kwargs: Any) -> None:
    """``jobs.signals.sync_pass_finished``, connected in MonitoringConfig.ready()."""
    record_pass("sync", cluster, seconds, failed=failed)


# --- the collector ------------------------------------------------------------------------------------


class PortalCollector:
    """Every EasyAI series, read when Prometheus asks (each part on its own: one failing leaves the others)."""

    def collect(self) -> Iterator[Metric]:
        clusters = list(Cluster.objects.order_by("pk").values_list("pk", "name", "healthy"))
        for part in (self._usage, self._jobs, self._queue, self._passes, self._errors, self._workers):
            try:
                yield from part(clusters)
            except Exception:
                log.exception("/metrics: %s failed", part.__name__)

    def _usage(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        names = ["namespace", "pod", "container"]
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds", "CPU seconds a local task's processes used (cAdvisor's name)", labels=names
        )
        memory = GaugeMetricFamily(
            "container_memory_working_set_bytes", "Resident bytes of a local task's processes", labels=names
        )
        gpu_util = GaugeMetricFamily("DCGM_FI_DEV_GPU_UTIL", "GPU utilisation of a local task (%)", labels=names)
        gpu_memory = GaugeMetricFamily("DCGM_FI_DEV_FB_USED", "GPU memory a local task uses (MiB)", labels=names)
        for readings in latest_readings([pk for pk, _n, _h in clusters]).values():
            for reading in readings.get("tasks", {}).values():
                if reading.get("cpu_total") is None:
                    continue  # a Kubernetes task: its own cAdvisor and DCGM exporter export it
                labels = reading.get("labels") or {}
                values = [labels.get(n, "") for n in names]
                at = reading["at"]
                cpu.add_metric(values, reading["cpu_total"], timestamp=at)
                memory.add_metric(values, reading["memory_bytes"], timestamp=at)
                if reading.get("gpu_util") is not None:
                    gpu_util.add_metric(values, reading["gpu_util"], timestamp=at)
                if reading.get("gpu_memory_bytes") is not None:
                    gpu_memory.add_metric(values, reading["gpu_memory_bytes"] / 2**20, timestamp=at)
        yield from (cpu, memory, gpu_util, gpu_memory)

    def _jobs(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("easyai_jobs", "Jobs by state, team and cluster", labels=["state", "team", "cluster"])
        rows = (
            Job.objects.filter(deleted=False)
            .order_by()
            .values_list("state", "team__slug", "cluster__name")
            .annotate(n=Count("pk"))
        )
        for state, team, cluster, n in rows:
            jobs.add_metric([state, team or "", cluster or ""], n)
        yield jobs

    def _queue(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        now = timezone.now()
        oldest = GaugeMetricFamily(
            "easyai_queue_waiting_oldest_seconds", "How long the longest-waiting job has waited", labels=["cluster"]
        )
        rows = (
            Job.objects.filter(state__in=WAITING, deleted=False)
            .order_by()
            .values_list("cluster__name")
            .annotate(first=Min("created_at"))
        )
        for cluster, first in rows:
            oldest.add_metric([cluster or ""], (now - first).total_seconds())
        yield oldest
        waits: dict[str, list[float]] = {}
        started = Job.objects.filter(started_at__gte=now - timedelta(hours=1)).order_by()
        for cluster, created, began in started.values_list("cluster__name", "created_at", "started_at"):
            waits.setdefault(cluster or "", []).append(max(0.0, (began - created).total_seconds()))
        wait = GaugeMetricFamily(
            "easyai_queue_wait_seconds",
            "Submit to running, over the jobs that started in the last hour",
            labels=["cluster", "quantile"],
        )
        for cluster, values in sorted(waits.items()):
            values.sort()
            for q in QUANTILES:
                wait.add_metric([cluster, str(q)], values[min(len(values) - 1, int(q * len(values)))])
        yield wait

    def _passes(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        keys = {_pass_key(kind, pk): (kind, name) for kind in PASS_KINDS for pk, name, _h in clusters}
        found = cache.get_many(list(keys))
        for kind in PASS_KINDS:
            what = "sync passes" if kind == "sync" else "sampling passes"
            seconds = HistogramMetricFamily(f"easyai_{kind}_pass_seconds", f"How long {what} took", labels=["cluster"])
            failures = CounterMetricFamily(f"easyai_{kind}_pass_failures", f"Failed {what}", labels=["cluster"])
            for key, stats in sorted(found.items()):
                if keys[key][0] != kind:
                    continue
                name = keys[key][1]
                buckets = [(repr(bound), n) for bound, n in zip(PASS_BUCKETS, stats["buckets"], strict=True)]
                seconds.add_metric([name], [*buckets, ("+Inf", stats["count"])], stats["sum"])
                failures.add_metric([name], stats["failures"])
            yield seconds
            yield failures

    def _errors(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        healthy = GaugeMetricFamily("easyai_cluster_healthy", "1 while the cluster answers", labels=["cluster"])
        for _pk, name, ok in clusters:
            healthy.add_metric([name], 1 if ok else 0)
        yield healthy
        errors = GaugeMetricFamily(
            "easyai_backend_errors",
            "Jobs whose last call to their backend failed and is being retried",
            labels=["cluster", "operation"],
        )
        submits = (
            Job.objects.filter(state=JobState.QUEUED)
            .exclude(submit_error="")
            .order_by()
            .values_list("cluster__name")
            .annotate(n=Count("pk"))
        )
        stops = (
            Job.objects.filter(stop_retry_at__isnull=False)
            .exclude(stop_error="")
            .order_by()
            .values_list("cluster__name")
            .annotate(n=Count("pk"))
        )
        for operation, rows in (("submit", submits), ("stop", stops)):
            for cluster, n in rows:
                errors.add_metric([cluster or "", operation], n)
        yield errors

    def _workers(self, clusters: list[tuple[int, str, bool]]) -> Iterator[Metric]:
        depth = GaugeMetricFamily("easyai_worker_queue_depth", "Tasks waiting in the workers' queue (django-q2)")
        depth.add_metric([], get_broker().queue_size() or 0)
        yield depth
        shells = GaugeMetricFamily("easyai_shell_sessions_open", "Shell sockets open into tasks")
        shells.add_metric([], ShellSession.objects.filter(closed_at__isnull=True).count())
        yield shells
        sockets = GaugeMetricFamily("easyai_websockets_open", "Websockets this process holds open", labels=["origin"])
        for origin in ("portal", "endpoints"):
            sockets.add_metric([origin], _open_sockets.get(origin, 0))
        yield sockets


# origin ("portal" or "endpoints") -> websockets open in this process now; the ASGI entry counts them.
_open_sockets: dict[str, int] = {}


def socket_opened(origin: str) -> None:
    _open_sockets[origin] = _open_sockets.get(origin, 0) + 1


def socket_closed(origin: str) -> None:
    _open_sockets[origin] = max(0, _open_sockets.get(origin, 0) - 1)


REGISTRY = CollectorRegistry()
REGISTRY.register(PortalCollector())
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


# --- the page ---------------------------------------------------------------------------------------------


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def refused(request: HttpRequest) -> HttpResponse | None:
    """Why this caller may not read /metrics (401 or 403), or None when it may."""
    token = settings.EASYAI_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        response = HttpResponse("A bearer token is needed (EASYAI_METRICS_TOKEN).\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    proxied = any(request.headers.get(h) for h in PROXY_HEADERS)
    if proxied or not _loopback(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse("Only this host may read /metrics while EASYAI_METRICS_TOKEN is unset.\n", status=403)
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = refused(request)
    if refusal is not None:
        return refusal
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    began = time.perf_counter()
    body = generate_latest(REGISTRY)
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    response["X-Metrics-Seconds"] = f"{time.perf_counter() - began:.4f}"
    return response
