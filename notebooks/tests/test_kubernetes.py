"""Notebooks on a Kubernetes cluster: the pod the API server receives, and the proxy's way to it.

The real `kubernetes` client talks to the fake API server (testing/fakekube.py); the tests play
the kubelet by giving the pod a phase and an IP. An echo server stands in for the pod's Jupyter (on a
loopback pod IP) or for the cluster's ingress, so a request goes through the portal's proxy for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.crypto import endpoint_token
from endpoints.proxy import Target, upstream_headers
from jobs import tasks
from jobs.models import Task
from notebooks import services, specs
from notebooks.models import NOTEBOOK_TASK, Notebook
from notebooks.tests.conftest import argv_of, created_pod
from testing.echo_server import Handler
from testing.fakekube import FakeKube, make_cluster
from testing.web import fetch

NS = "easyai-vision"
POD_IP = "127.0.0.2"  # a loopback address of its own: the echo server takes Jupyter's port there


def echo_server(host: str, port: int) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def pod_echo() -> Iterator[ThreadingHTTPServer]:
    """Something listening where the notebook pod's Jupyter would: POD_IP, Jupyter's container port."""
    yield from echo_server(POD_IP, specs.JUPYTER_PORT)


@pytest.fixture
def ingress_echo() -> Iterator[ThreadingHTTPServer]:
    """Something standing in for the cluster's ingress controller, on a free port."""
    yield from echo_server("127.0.0.1", 0)


def start_notebook(owner, team, cluster) -> Notebook:
    notebook = services.notebook_create(user=owner, team=team, name="lab", cluster=cluster.name)
    notebook.refresh_from_db()
    assert notebook.job is not None and notebook.job.cluster_id == cluster.pk
    return notebook


def pod_runs(kube: FakeKube, pod: dict[str, Any], ip: str) -> None:
    """Play the kubelet: the pod runs, with an IP."""
    container = pod["spec"]["containers"][0]["name"]
    kube.set_status(
        "", "v1", "pods", NS, pod["metadata"]["name"],
        {"phase": "Running", "podIP": ip, "startTime": "2026-01-01T00:00:00Z",
         "containerStatuses": [{"name": container, "ready": True, "restartCount": 0,
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    )  # fmt: skip


def test_a_notebook_on_kubernetes_is_a_strict_pod_with_jupyter_under_the_proxy_path(
    kube, owner, team, django_capture_on_commit_callbacks
):
    cluster = make_cluster(kube, is_default=True)
    with django_capture_on_commit_callbacks(execute=True):
        notebook = start_notebook(owner, team, cluster)
    job_id = notebook.job.public_id
    pod = created_pod(kube, job_id)
    assert validate_manifest(pod) == []
    container = pod["spec"]["containers"][0]
    assert container["image"] == specs.notebook_spec(notebook, cluster)["image"]
    assert container["ports"] == [{"name": "jupyter", "containerPort": specs.JUPYTER_PORT, "protocol": "TCP"}]

    argv = argv_of(container)
    assert argv[:2] == ["jupyter", "lab"]
    assert f"--ServerApp.base_url=/endpoints/{job_id}/{NOTEBOOK_TASK}/jupyter/" in argv
    assert "--ip=0.0.0.0" in argv and f"--port={specs.JUPYTER_PORT}" in argv
    # No password: the portal's proxy authenticates. The token is one only the portal can make (the pod's
    # JUPYTER_TOKEN, which Jupyter reads when its command line sets none), so the pod's IP or an ingress
    # does not open the server to anyone who has not come through the proxy.
    assert "--PasswordIdentityProvider.hashed_password=" in argv
    assert not any(arg.startswith("--IdentityProvider.token") for arg in argv)
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["JUPYTER_TOKEN"] == endpoint_token(job_id) and len(env["JUPYTER_TOKEN"]) == 48
    assert endpoint_token(job_id) != endpoint_token("j-00000000")
    assert "--ServerApp.root_dir=/workspace" in argv

    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/workspace/personal"]["subPath"] == "notebook/owner"
    assert mounts["/workspace/public"]["subPath"] == "notebook/public"
    assert {mounts[p]["name"] for p in ("/workspace/personal", "/workspace/public")} == {m.NFS_VOLUME}
    (nfs,) = [v for v in pod["spec"]["volumes"] if v["name"] == m.NFS_VOLUME]
    assert nfs["nfs"] == {"server": "nfs.example.org", "path": "/export/easyai"}
    # Oversold: it asks for a quarter of its limits.
    assert container["resources"]["limits"]["cpu"] == "2" and container["resources"]["requests"]["cpu"] == "500m"


def test_a_running_notebook_pod_is_reached_through_the_proxy_at_its_pod_ip(asgi_server, kube, people, team, pod_echo):
    owner = people["owner"]
    cluster = make_cluster(kube, is_default=True)
    notebook = start_notebook(owner, team, cluster)
    job_id = notebook.job.public_id
    base = f"/endpoints/{job_id}/{NOTEBOOK_TASK}/jupyter/"
    assert fetch(asgi_server.port, base + "echo", user=owner)[0] == 503  # no pod IP yet

    pod_runs(kube, created_pod(kube, job_id), POD_IP)
    tasks.sync_cluster(cluster.pk)
    task = Task.objects.get(job=notebook.job)
    assert task.endpoints == {"jupyter": f"{POD_IP}:{specs.JUPYTER_PORT}"}

    status, _headers, body = fetch(asgi_server.port, base + "echo?x=1", user=owner, Origin="http://portal.test")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == base + "echo?x=1"  # Jupyter's base URL is the full path
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["host"] == f"localhost:{asgi_server.port}"  # the endpoint origin's: Jupyter compares it with Origin
    # The portal's API token stays with the portal; Jupyter gets its own.
    assert headers["authorization"] == f"token {endpoint_token(job_id)}"
    # A notebook is personal: a team-mate is refused, an outsider learns nothing.
    assert fetch(asgi_server.port, base + "echo", user=people["mate"])[0] == 403
    assert fetch(asgi_server.port, base + "echo", user=people["outsider"])[0] == 404


def test_with_an_ingress_host_the_proxy_goes_through_the_ingress_with_its_host(
    asgi_server, kube, people, team, ingress_echo
):
    owner = people["owner"]
    ingress = f"localhost:{ingress_echo.server_address[1]}"
    cluster = make_cluster(kube, is_default=True, ingress_host=ingress)
    notebook = start_notebook(owner, team, cluster)
    job_id = notebook.job.public_id
    service = kube.get("", "v1", "services", NS, f"{job_id}-{NOTEBOOK_TASK}-ep")
    assert service is not None and service["spec"]["selector"][m.LABEL_JOB_ID] == job_id
    rule = kube.get("networking.k8s.io", "v1", "ingresses", NS, job_id)["spec"]["rules"][0]
    assert rule["host"] == "localhost"
    assert [p["path"] for p in rule["http"]["paths"]] == [f"/endpoints/{job_id}/{NOTEBOOK_TASK}/jupyter"]

    pod_runs(kube, created_pod(kube, job_id), "10.1.2.3")  # a pod IP the portal cannot reach
    tasks.sync_cluster(cluster.pk)
    base = f"/endpoints/{job_id}/{NOTEBOOK_TASK}/jupyter/"
    endpoints = f"localhost:{asgi_server.port}"  # the endpoint origin, where the notebook's pages are
    status, _headers, body = fetch(
        asgi_server.port, base + "echo", user=owner, Origin=f"http://{endpoints}", Referer=f"http://{endpoints}{base}"
    )
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == base + "echo"
    headers = {k.lower(): v for k, v in seen["headers"]}
    # The ingress routes by its own host; the endpoint origin becomes the ingress's, as the app sees it.
    assert headers["host"] == ingress
    assert headers["origin"] == f"http://{ingress}" and headers["referer"] == f"http://{ingress}{base}"
    assert headers["x-forwarded-host"] == endpoints
    assert headers["authorization"] == f"token {endpoint_token(job_id)}"  # Jupyter behind the ingress demands it

    services.notebook_stop(notebook=notebook, actor=owner)
    assert kube.of_kind("", "v1", "services") == [] and kube.of_kind("networking.k8s.io", "v1", "ingresses") == []


def test_a_foreign_origin_is_not_made_the_ingresses():
    target = Target("ingress.example.org", "j-abcdefgh", "/endpoints/j-abcdefgh/notebook-0/jupyter/", False,
                    "ingress.example.org")  # fmt: skip
    scope = {
        "headers": [(b"host", b"portal.example.org"), (b"origin", b"https://evil.example.com")],
        "client": ("10.0.0.9", 5000),
        "scheme": "https",
    }
    headers = dict(upstream_headers(scope, target))
    assert headers["host"] == "ingress.example.org"
    assert headers["origin"] == "https://evil.example.com"  # still cross-origin: the app refuses it
    scope["headers"][1] = (b"origin", b"https://portal.example.org")
    assert dict(upstream_headers(scope, target))["origin"] == "https://ingress.example.org"
    # Not a URL at all: passed on as it is, never a server error.
    scope["headers"][1] = (b"referer", b"http://[portal.example.org/lab")
    assert dict(upstream_headers(scope, target))["referer"] == "http://[portal.example.org/lab"


def test_a_client_cannot_put_its_own_authorization_before_jupyters():
    target = Target("10.1.2.3:8888", "j-abcdefgh", "/endpoints/j-abcdefgh/notebook-0/jupyter/", False, "", "t0k")
    scope = {"headers": [(b"host", b"portal.example.org"), (b"authorization", b"token guessed")], "scheme": "https"}
    authorizations = [v for k, v in upstream_headers(scope, target) if k.lower() == "authorization"]
    assert authorizations == ["token t0k"]
