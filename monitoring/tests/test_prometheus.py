"""A real Prometheus (Debian's ``prometheus``, started here on loopback) scrapes the portal's /metrics with the token,
and the Kubernetes usage path (clusters/backends/kubernetes/usage.py: the code production uses) reads a job's
usage back from it through its HTTP API. Also the usage path against canned answers: DCGM's label variants,
and errors that give no readings rather than a failed pass.

Skipped where /usr/bin/prometheus is missing, unless EASYAI_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from clusters.backends.base import BackendError, ObservedState
from clusters.backends.kubernetes import usage as k8s_usage
from clusters.backends.kubernetes.manifests.names import pod_name
from clusters.backends.local.usage import pod_labels
from jobs import services as job_services
from jobs.workers.submit import job_submit_to_backend
from jobs.workers.sync import cluster_sync
from monitoring import sampler
from testing.wait import wait_until

PROMETHEUS = Path("/usr/bin/prometheus")
TOKEN = "prometheus-scrapes-with-this"
MiB = 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def prometheus(asgi_server, settings, tmp_path) -> Iterator[str]:
    """Prometheus on loopback, scraping the live test server's /metrics every second with the bearer token."""
    if not PROMETHEUS.exists():
        if os.environ.get("EASYAI_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"{PROMETHEUS} is missing and EASYAI_REQUIRE_PROMETHEUS=1 (apt-get install prometheus)")
        pytest.skip(
            f"{PROMETHEUS} is missing (apt-get install prometheus); EASYAI_REQUIRE_PROMETHEUS=1 makes this fail"
        )
    settings.EASYAI_METRICS_TOKEN = TOKEN
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: easyai
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {TOKEN}
    static_configs:
      - targets: ["127.0.0.1:{asgi_server.port}"]
  - job_name: easyai-without-token
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{asgi_server.port}"]
"""
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout=30, what="Prometheus ready", every=0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)


def _running_job(owner, fake):
    doc = {"name": "p", "framework": "pytorch", "command": "train", "roles": {"master": {}, "worker": {"replicas": 1}}}
    job = job_services.job_submit(user=owner, data=doc)
    job_submit_to_backend(job.pk)
    fake.set_state(job.public_id, ObservedState.RUNNING, started_at=datetime.now(UTC) - timedelta(seconds=5))
    cluster_sync(fake.cluster)
    return job


@pytest.mark.slow
def test_prometheus_scrapes_metrics_and_the_kubernetes_path_reads_a_jobs_usage_back(
    prometheus, transactional_db, fake_backend, owner
):
    """A job's tasks sampled as the local backend samples them (CPU-second counters, the labels of the job's pods);
    Prometheus scrapes /metrics; the Kubernetes usage path asks it and gets the same figures back."""
    job = _running_job(owner, fake_backend)
    description = {"job_id": job.public_id, "team": job.team.slug, "framework": job.framework}
    labels = {name: pod_labels(description, *name.split("-")) for name in ("master-0", "worker-0")}
    # The labels a local task's usage carries are those of the pod Kubernetes would run it in.
    assert labels["worker-0"]["pod"] == pod_name(job.public_id, "worker", 0, "pytorch")
    assert labels["worker-0"]["namespace"] == job.team.slug
    began = time.time()
    cores = {"master-0": 2.0, "worker-0": 0.5}

    def sample_now() -> None:
        now = datetime.now(UTC)
        for name, rate in cores.items():
            fake_backend.set_usage(
                job.public_id,
                name,
                cpu_seconds_total=rate * (now.timestamp() - began + 1),
                memory_bytes=(300 if name == "master-0" else 100) * MiB,
                gpu_util=60.0 if name == "master-0" else None,
                gpu_memory_bytes=1024 * MiB if name == "master-0" else None,
                labels=labels[name],
                at=now,
            )
        sampler.sample_cluster(fake_backend.cluster)

    def scraped() -> bool:
        answer = _get_json(f"{prometheus}/api/v1/query?query=up")
        return any(r["metric"].get("job") == "easyai" and r["value"][1] == "1" for r in answer["data"]["result"])

    sample_now()
    # Prometheus applies its targets a few seconds after it starts: from the first scrape on, once a second.
    wait_until(scraped, timeout=30, what="Prometheus scraping /metrics with the token", every=0.2)
    first_scrape = time.time()

    readings: dict[str, k8s_usage.TaskUsage] = {}

    def read_back() -> bool:
        sample_now()
        found = k8s_usage.usage(
            {"prometheus_url": prometheus, "prometheus_rate_window": "5s", "prometheus_timeout": 2}, [job.public_id]
        )
        readings.clear()
        readings.update({r.task: r for r in found})
        master = readings.get("master-0")
        # rate() is whole once the readings fill its window: before, it extrapolates from a part of it.
        whole = time.time() - first_scrape > 6
        return bool(whole and master and master.gpu_util is not None and "worker-0" in readings)

    wait_until(
        read_back,
        timeout=40,
        what="the job's usage read back from Prometheus",
        every=0.5,
        explain=lambda: str(readings),
    )
    master, worker = readings["master-0"], readings["worker-0"]
    assert master.job_id == job.public_id and master.labels == {"namespace": "vision", "pod": labels["master-0"]["pod"]}
    assert master.cpu_cores == pytest.approx(2.0, abs=0.2)
    assert worker.cpu_cores == pytest.approx(0.5, abs=0.1)
    assert master.memory_bytes == 300 * MiB and worker.memory_bytes == 100 * MiB
    assert master.gpu_util == 60.0 and master.gpu_memory_bytes == 1024 * MiB
    assert worker.gpu_util is None and worker.gpu_memory_bytes is None
    # Another job's id finds nothing.
    assert k8s_usage.usage({"prometheus_url": prometheus}, ["j-nothere1"]) == []


@pytest.mark.slow
def test_a_scrape_without_the_token_is_refused(prometheus, transactional_db):
    targets: dict[str, dict] = {}

    def both_scraped() -> bool:
        answer = _get_json(f"{prometheus}/api/v1/targets")
        targets.update({t["labels"]["job"]: t for t in answer["data"]["activeTargets"]})
        return all(targets.get(j, {}).get("health") in ("up", "down") for j in ("easyai", "easyai-without-token"))

    wait_until(both_scraped, timeout=20, what="both scrapes", every=0.2, explain=lambda: str(targets))
    assert targets["easyai"]["health"] == "up"
    assert targets["easyai-without-token"]["health"] == "down"
    assert "401" in targets["easyai-without-token"]["lastError"]


@pytest.mark.slow
def test_the_grafana_dashboards_queries_are_promql_prometheus_takes(prometheus, transactional_db):
    dashboard = json.loads((Path(__file__).resolve().parents[1] / "grafana" / "easyai.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(queries) > 15
    for query in queries:
        concrete = query.replace("$__all", ".*")
        for name in ("cluster", "namespace", "pod", "job"):
            concrete = concrete.replace(f"${name}", ".*")
        body = urllib.parse.urlencode({"query": concrete}).encode()
        try:
            with urllib.request.urlopen(f"{prometheus}/api/v1/query", data=body, timeout=5) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{query}: {exc.read().decode()}")
        assert answer["status"] == "success", query


# --- the usage path against canned answers -------------------------------------------------------------------


class _Canned:
    """A stand-in Prometheus answering each query by the metric it names; records the queries."""

    def __init__(self, answers: dict[str, list[dict]], status: int = 200) -> None:
        self.answers, self.status, self.queries = answers, status, []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                query = parse_qs(body)["query"][0]
                canned.queries.append(query)
                result = next((v for k, v in canned.answers.items() if k in query), [])
                data = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data.encode() if canned.status == 200 else b"oops")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned() -> Iterator[type[_Canned]]:
    made: list[_Canned] = []

    def make(*args, **kwargs) -> _Canned:
        made.append(_Canned(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _v(labels: dict, value: float) -> dict:
    return {"metric": labels, "value": [time.time(), str(value)]}


def test_dcgm_series_are_read_by_pod_or_exported_pod_and_hostname_only_ones_are_skipped(canned):
    prometheus = canned(
        {
            "container_cpu_usage_seconds_total": [
                _v({"namespace": "vision", "pod": "j-aaaa1111-worker-0"}, 1.5),
                _v({"namespace": "vision", "pod": "j-bbbb2222"}, 0.25),
                _v({"namespace": "vision", "pod": "j-aaaa1111x-worker-0"}, 9),  # another job's id that begins alike
            ],
            "container_memory_working_set_bytes": [
                _v({"namespace": "vision", "pod": "j-aaaa1111-worker-0"}, 2 * 2**30),
                _v({"namespace": "vision", "pod": "j-bbbb2222"}, 2**20),
            ],
            "DCGM_FI_DEV": [
                _v({"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "pod": "j-aaaa1111-worker-0"}, 30),
                _v({"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "1", "pod": "j-aaaa1111-worker-0"}, 50),
                _v({"__name__": "DCGM_FI_DEV_FB_USED", "gpu": "0", "pod": "j-aaaa1111-worker-0"}, 100),
                _v({"__name__": "DCGM_FI_DEV_FB_USED", "gpu": "1", "pod": "j-aaaa1111-worker-0"}, 200),
                # The exporter's own pod label, its series' pod renamed by Prometheus
                _v(
                    {
                        "__name__": "DCGM_FI_DEV_GPU_UTIL",
                        "pod": "dcgm-exporter-x",
                        "exported_pod": "j-bbbb2222",
                        "exported_namespace": "vision",
                    },
                    7,
                ),  # fmt: skip
                # No Kubernetes mapping: a GPU known only by its node names no pod
                _v({"__name__": "DCGM_FI_DEV_GPU_UTIL", "Hostname": "node-3", "gpu": "0"}, 99),
            ],
        }
    )
    found = {
        (r.job_id, r.task): r for r in k8s_usage.usage({"prometheus_url": prometheus.url}, ["j-aaaa1111", "j-bbbb2222"])
    }
    assert set(found) == {("j-aaaa1111", "worker-0"), ("j-bbbb2222", "")}
    worker = found[("j-aaaa1111", "worker-0")]
    assert (worker.cpu_cores, worker.memory_bytes, worker.gpu_util, worker.gpu_memory_bytes) == (
        1.5,
        2 * 2**30,
        40.0,
        300 * MiB,
    )
    single = found[("j-bbbb2222", "")]
    assert (single.cpu_cores, single.gpu_util, single.gpu_memory_bytes) == (0.25, 7.0, None)
    assert len(prometheus.queries) == 3  # whatever the number of jobs
    assert 'container!="POD"' in prometheus.queries[0] and "[2m]" in prometheus.queries[0]


def test_a_prometheus_that_fails_gives_no_readings_and_a_backend_error(canned):
    broken = canned({}, status=500)
    with pytest.raises(BackendError, match="answered 500"):
        k8s_usage.usage({"prometheus_url": broken.url}, ["j-aaaa1111"])
    with pytest.raises(BackendError, match="did not answer"):
        k8s_usage.usage({"prometheus_url": f"http://127.0.0.1:{_free_port()}", "prometheus_timeout": 1}, ["j-a"])
    with pytest.raises(BackendError, match="not an http"):
        k8s_usage.usage({"prometheus_url": "file:///etc/passwd"}, ["j-a"])
    assert k8s_usage.usage({}, ["j-a"]) == []  # no Prometheus named: nothing asked


def test_a_slow_prometheus_times_out(canned, monkeypatch):
    slow = canned({})
    original = slow.server.RequestHandlerClass.do_POST

    def sleepy(self) -> None:
        time.sleep(2)
        original(self)

    monkeypatch.setattr(slow.server.RequestHandlerClass, "do_POST", sleepy)
    began = time.monotonic()
    with pytest.raises(BackendError):
        k8s_usage.usage({"prometheus_url": slow.url, "prometheus_timeout": 0.3}, ["j-a"])
    assert time.monotonic() - began < 1.5
