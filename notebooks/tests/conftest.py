"""Fixtures of the notebooks tests: a local cluster, notebooks started on it, HTTP through a real server."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

import pytest

from clusters.models import Cluster
from conftest import token_key_for
from jobs import workers as job_workers
from notebooks.models import Notebook


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The people of a permission test are made with passwords: hash them cheaply here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def local_cluster(transactional_db, tmp_path, monkeypatch) -> Cluster:
    """A local cluster; its tasks get a home of their own (Jupyter keeps its runtime files there)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "8Gi", "stop_grace": 2}
    )


@pytest.fixture
def stop_all(local_cluster):
    """Every job of the local cluster is stopped after the test, whatever it left running."""
    yield
    from jobs.models import Job

    backend = local_cluster.backend()
    for job_id in Job.objects.filter(cluster=local_cluster).values_list("public_id", flat=True):
        backend.stop(job_id)


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def wait_running(notebook: Notebook, cluster: Cluster, timeout: float = 90.0) -> Notebook:
    """Sync the cluster until the notebook's server has an endpoint, as the scheduler's passes would."""

    def ready() -> Notebook | None:
        job_workers.cluster_sync(cluster)
        fresh = Notebook.objects.select_related("job").prefetch_related("job__tasks").get(pk=notebook.pk)
        assert fresh.job is not None and not fresh.job.is_final, (fresh.job.state, fresh.job.message)
        return fresh if fresh.state == "running" else None

    return wait_until(ready, timeout, f"notebook {notebook.name} to run", every=0.2)


def token_for(user) -> str:
    return token_key_for(user)


def fetch(
    port: int, path: str, *, method: str = "GET", user=None, body: bytes | None = None, **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One plain HTTP request to 127.0.0.1:port (no redirects followed): status, headers, body."""
    if user is not None:
        headers["Authorization"] = f"Token {token_for(user)}"
    if path.startswith("/endpoints/") and not any(name.lower() == "host" for name in headers):
        # Endpoints are served on their own origin, by host name (endpoints/origin.py).
        from endpoints.origin import origin

        headers["Host"] = f"{origin().host}:{port}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def wait_answering(port: int, path: str, user, timeout: float = 60.0) -> bytes:
    """Poll a proxied path until it answers 200 (a server may take a moment after its endpoint is known)."""

    def answered() -> bytes | None:
        status, _headers, body = fetch(port, path, user=user)
        return body if status == 200 else None

    return wait_until(answered, timeout, f"{path} to answer", every=0.2)
