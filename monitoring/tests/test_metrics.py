"""/metrics: closed to the world (a bearer token, or loopback only without one); the local tasks' usage under
cAdvisor's names with a pod's labels; the portal's health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusters.backends.base import BackendError, ObservedState
from jobs import services as job_services
from jobs import tasks as job_tasks
from jobs.models import Job
from jobs.workers.submit import job_submit_to_backend
from jobs.workers.sync import cluster_sync
from monitoring import sampler

TOKEN = "s3cret-metrics-token"


def _series(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _running(owner, fake) -> Job:
    doc = {"name": "m", "framework": "pytorch", "command": "train", "roles": {"master": {}, "worker": {"replicas": 1}}}
    job = job_services.job_submit(user=owner, data=doc)
    job_submit_to_backend(job.pk)
    fake.set_state(job.public_id, ObservedState.RUNNING, started_at=datetime.now(UTC) - timedelta(seconds=30))
    cluster_sync(fake.cluster)
    return job


# --- who may read it ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_token_only_loopback_callers_are_answered(client, settings):
    settings.EASYAI_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="192.168.0.7").status_code == 403
    # A proxy on this host relays the world's requests from loopback: those are not loopback's own.
    relayed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert relayed.status_code == 403


@pytest.mark.django_db
def test_with_a_token_callers_without_it_are_refused_even_from_loopback(client, settings):
    settings.EASYAI_METRICS_TOKEN = TOKEN
    refused = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert b"easyai_jobs" not in refused.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    answered = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answered.status_code == 200 and answered["Content-Type"].startswith("text/plain")
    assert b"# TYPE easyai_jobs gauge" in answered.content


@pytest.mark.django_db
def test_a_signed_in_user_is_no_key_to_it(client, settings, owner):
    settings.EASYAI_METRICS_TOKEN = TOKEN
    client.force_login(owner)
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401


# --- what it says ---------------------------------------------------------------------------------------


def test_the_local_tasks_usage_is_exported_as_cadvisor_exports_a_pod(fake_backend, owner, client):
    job = _running(owner, fake_backend)
    labels = {"namespace": "vision", "pod": f"{job.public_id}-master-0", "container": "pytorch"}
    at = datetime.now(UTC)
    fake_backend.set_usage(
        job.public_id, "master-0", cpu_seconds_total=42.5, memory_bytes=300 * 2**20, gpu_util=12.0,
        gpu_memory_bytes=512 * 2**20, labels=labels, at=at,
    )  # fmt: skip
    sampler.sample_cluster(fake_backend.cluster)
    body = client.get("/metrics").content
    series = _series(body)
    key = tuple(sorted(labels.items()))
    assert series[("container_cpu_usage_seconds_total", key)] == 42.5
    assert series[("container_memory_working_set_bytes", key)] == 300 * 2**20
    assert series[("DCGM_FI_DEV_GPU_UTIL", key)] == 12.0
    assert series[("DCGM_FI_DEV_FB_USED", key)] == 512.0  # MiB, as DCGM counts it
    # Stamped with the time of the reading, as cAdvisor stamps its own.
    line = next(x for x in body.decode().splitlines() if x.startswith("container_cpu_usage_seconds_total{"))
    assert line.endswith(f" {int(at.timestamp() * 1000)}")


def test_a_rate_backends_tasks_are_not_exported_again(fake_backend, owner, client):
    job = _running(owner, fake_backend)
    fake_backend.set_usage(job.public_id, "master-0", cpu_cores=1.0, memory_bytes=1, labels={"pod": "x"})
    sampler.sample_cluster(fake_backend.cluster)
    assert not [k for k in _series(client.get("/metrics").content) if k[0].startswith("container_")]


def test_the_portals_health(fake_backend, owner, client, django_assert_max_num_queries):
    _running(owner, fake_backend)
    job_services.job_submit(user=owner, data={"name": "w", "framework": "batch", "command": "x", "roles": {"a": {}}})
    job_tasks.sync_cluster(fake_backend.cluster.pk)
    fake_backend.fail_observe = BackendError("cluster down")
    job_tasks.sync_cluster(fake_backend.cluster.pk)
    fake_backend.fail_usage = BackendError("no Prometheus")
    sampler.sample_cluster(fake_backend.cluster)
    with django_assert_max_num_queries(12):
        body = client.get("/metrics").content
    series = _series(body)
    cluster = (("cluster", "fake"),)
    assert series[("easyai_jobs", (("cluster", "fake"), ("state", "running"), ("team", "vision")))] == 1
    assert series[("easyai_jobs", (("cluster", "fake"), ("state", "queued"), ("team", "vision")))] == 1
    assert series[("easyai_queue_waiting_oldest_seconds", cluster)] >= 0
    assert ("easyai_queue_wait_seconds", (("cluster", "fake"), ("quantile", "0.5"))) in series
    assert series[("easyai_sync_pass_seconds_count", cluster)] == 2
    assert series[("easyai_sync_pass_seconds_bucket", (("cluster", "fake"), ("le", "+Inf")))] == 2
    assert series[("easyai_sync_pass_failures_total", cluster)] == 1
    assert series[("easyai_usage_pass_failures_total", cluster)] == 1
    assert series[("easyai_cluster_healthy", cluster)] == 1
    assert series[("easyai_worker_queue_depth", ())] >= 0
    assert series[("easyai_shell_sessions_open", ())] == 0
    assert ("process_cpu_seconds_total", ()) in series


@pytest.mark.django_db
def test_websockets_are_counted_while_they_last(client, settings, monkeypatch):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from easyai_site import asgi
    from monitoring import metrics

    settings.EASYAI_METRICS_TOKEN = ""
    seen: list[dict[str, int]] = []

    async def held(scope, receive, send):  # a socket that is open while the counts are read
        seen.append(dict(metrics._open_sockets))

    monkeypatch.setattr(asgi, "_socket_entry", held)
    before = dict(metrics._open_sockets)
    endpoint_host = f"{settings.EASYAI_ENDPOINTS_URL.split('//')[1]}".encode()
    for host in (b"127.0.0.1:8000", endpoint_host):
        scope = {"type": "websocket", "headers": [(b"host", host)]}
        # In a thread of its own: a browser test's loop may be running in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, asgi.socket_entry(scope, None, None)).result()
    assert seen[0].get("portal", 0) == before.get("portal", 0) + 1
    assert seen[1].get("endpoints", 0) == before.get("endpoints", 0) + 1
    assert metrics._open_sockets.get("portal", 0) == before.get("portal", 0)  # closed: no longer counted
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").content.decode())}
    origins = {sample.labels["origin"] for sample in families["easyai_websockets_open"].samples}
    assert origins == {"portal", "endpoints"}
