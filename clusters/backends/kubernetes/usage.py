"""What a Kubernetes job's tasks use, asked of the cluster's Prometheus (its HTTP query API, ``/api/v1/query``).

The cluster's settings name it: ``prometheus_url`` (e.g. ``http://prometheus.monitoring:9090``), and optionally
``prometheus_timeout`` (seconds, default 5) and ``prometheus_rate_window`` (default ``2m``: at least two scrapes
of cAdvisor). Three instant queries per pass, whatever the number of jobs, each for every job at once by a
regular expression over pod names (the operators name a task's pod ``{job}-{role}-{index}``, a notebook's,
TensorBoard's or app's pod is the job id itself):

- CPU, in cores: ``rate(container_cpu_usage_seconds_total[window])`` (cAdvisor, through the kubelet);
- memory: ``container_memory_working_set_bytes`` (what the OOM killer looks at);
- GPUs: the DCGM exporter's ``DCGM_FI_DEV_GPU_UTIL`` (%) and ``DCGM_FI_DEV_FB_USED`` (MiB), per GPU.

cAdvisor's series of the pod itself (``container=""``) and of its pause container (``container="POD"``) are left
out; the task's containers are summed. DCGM labels the pod a GPU serves ``pod``/``namespace`` (its own labels,
scraped with ``honor_labels``) or ``exported_pod``/``exported_namespace`` (Prometheus renamed them); both are
read. A DCGM set up without the Kubernetes mapping labels GPUs only by ``Hostname``: those series name no pod,
so the task's GPU figures stay unknown (None) while its CPU and memory are still read.

Errors (no answer, a timeout, a refusal, an answer that is not Prometheus's) mean no readings this pass: they
raise BackendError, which the sampler counts and carries on.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from clusters.backends.base import BackendError, TaskUsage

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RATE_WINDOW = "2m"
_WINDOW = re.compile(r"^[0-9]+(ms|s|m|h)$")
_CONTAINER = 'container!="",container!="POD"'


_RE2_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def pod_pattern(job_ids: list[str]) -> str:
    """A regular expression (RE2, anchored by Prometheus) for every pod of these jobs, as a PromQL string's
    content: RE2's metacharacters escaped, then the string's own backslashes and quotes."""
    pattern = "(" + "|".join(_RE2_SPECIAL.sub(r"\\\1", j) for j in sorted(job_ids)) + ")(-.+)?"
    return pattern.replace("\\", "\\\\").replace('"', '\\"')


def _task_of(pod: str, job_ids: set[str]) -> tuple[str, str] | None:
    """(job id, task name) of a pod: "{job}-{role}-{index}" -> "{role}-{index}"; the job's own pod -> ""."""
    if pod in job_ids:
        return pod, ""
    cut = pod.find("-")
    while cut != -1:  # job ids hold dashes too: try each, shortest first
        if pod[:cut] in job_ids:
            return pod[:cut], pod[cut + 1 :]
        cut = pod.find("-", cut + 1)
    return None


class Prometheus:
    """A small client of Prometheus's HTTP query API."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise BackendError(f"prometheus_url {url!r} is not an http(s) URL")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector (POST: a query over many jobs outgrows a URL)."""
        body = urllib.parse.urlencode({"query": promql}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v1/query",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise BackendError(f"Prometheus at {self.url} answered {exc.code}: {exc.read()[:200]!r}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise BackendError(f"Prometheus at {self.url} did not answer: {exc}") from exc
        except ValueError as exc:
            raise BackendError(f"Prometheus at {self.url} answered with something that is not JSON") from exc
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise BackendError(f"Prometheus at {self.url} refused the query: {str(answer)[:200]}")
        data = answer.get("data") or {}
        if data.get("resultType") != "vector":
            raise BackendError(f"Prometheus at {self.url} answered a {data.get('resultType')!r}, not a vector")
        return data.get("result") or []


def _value(item: dict[str, Any]) -> float | None:
    try:
        value = float(item["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None if value != value else value  # NaN: nothing known


def usage_from_prometheus(
    prometheus: Prometheus, job_ids: list[str], *, window: str = DEFAULT_RATE_WINDOW
) -> list[TaskUsage]:
    """Every pod of these jobs that Prometheus knows: one reading per task (see the module docstring)."""
    if not job_ids:
        return []
    if not _WINDOW.match(window):
        raise BackendError(f"prometheus_rate_window {window!r} is not a Prometheus duration like 2m")
    ids = set(job_ids)
    pods = pod_pattern(job_ids)
    at = datetime.now(UTC)
    cpu = prometheus.query(
        f'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{pod=~"{pods}",{_CONTAINER}}}[{window}]))'
    )
    memory = prometheus.query(
        f'sum by (namespace, pod) (container_memory_working_set_bytes{{pod=~"{pods}",{_CONTAINER}}})'
    )
    gpu_names = '__name__=~"DCGM_FI_DEV_GPU_UTIL|DCGM_FI_DEV_FB_USED"'
    gpus = prometheus.query(f'{{{gpu_names},pod=~"{pods}"}} or {{{gpu_names},exported_pod=~"{pods}"}}')

    found: dict[tuple[str, str], TaskUsage] = {}

    def reading(labels: dict[str, str], pod_key: str = "pod", namespace_key: str = "namespace") -> TaskUsage | None:
        pod = labels.get(pod_key) or ""
        owner = _task_of(pod, ids)
        if owner is None:
            return None
        if owner not in found:
            found[owner] = TaskUsage(
                job_id=owner[0],
                task=owner[1],
                at=at,
                memory_bytes=0,
                cpu_cores=None,  # not known until the CPU query names the pod (its rate needs two scrapes)
                labels={"namespace": labels.get(namespace_key) or "", "pod": pod},
            )
        return found[owner]

    for item in cpu:
        value, task = _value(item), reading(item.get("metric") or {})
        if task is not None and value is not None:
            task.cpu_cores = max(0.0, value)
    for item in memory:
        value, task = _value(item), reading(item.get("metric") or {})
        if task is not None and value is not None:
            task.memory_bytes = int(value)
    per_gpu: dict[tuple[str, str], dict[str, list[float]]] = {}
    for item in gpus:
        labels = item.get("metric") or {}
        value = _value(item)
        if value is None:
            continue
        own = bool(labels.get("pod")) and _task_of(labels["pod"], ids) is not None
        task = reading(labels) if own else reading(labels, "exported_pod", "exported_namespace")
        if task is None:
            continue
        figures = per_gpu.setdefault((task.job_id, task.task), {})
        figures.setdefault(labels.get("__name__", ""), []).append(value)
    for key, figures in per_gpu.items():
        utils, used = figures.get("DCGM_FI_DEV_GPU_UTIL"), figures.get("DCGM_FI_DEV_FB_USED")
        if utils:
            found[key].gpu_util = sum(utils) / len(utils)
        if used:
            found[key].gpu_memory_bytes = int(sum(used) * 2**20)  # DCGM counts frame buffer in MiB
    return list(found.values())


def usage(settings: dict[str, Any], job_ids: list[str]) -> list[TaskUsage]:
    """The readings of a cluster whose settings name a Prometheus; none where they name none."""
    url = (settings or {}).get("prometheus_url")
    if not url:
        return []
    try:
        timeout = float(settings.get("prometheus_timeout", DEFAULT_TIMEOUT_S))
    except (TypeError, ValueError):
        timeout = DEFAULT_TIMEOUT_S
    window = str(settings.get("prometheus_rate_window") or DEFAULT_RATE_WINDOW)
    return usage_from_prometheus(Prometheus(url, timeout), job_ids, window=window)
