"""Apps on a Kubernetes cluster: the Pod an app's run is rendered as (never a Service or an Ingress, even on a
cluster with an ingress host: a route there would serve the app past its visibility), validated strictly
against the vendored schemas; an app's life on the fake API server; and the
proxy's way to a running app, straight to its pod's IP.

The real `kubernetes` client talks to the fake API server (testing/fakekube.py); the tests play the kubelet by
giving the pod a phase and an IP. A small HTTP server on a loopback address stands in for the app in its pod,
so the sync pass's readiness probe is a real request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings

from apps import proxy, services, specs
from apps.models import APP_TASK, WEB_PORT, App, AppState
from apps.tests.conftest import put_example, put_files
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster
from jobs import readiness
from jobs import spec as job_spec
from jobs.describe import describe
from jobs.models import Job, Task
from jobs.workers import sync as job_sync
from testing.fakekube import NS, FakeKube, make_cluster

SECRET = "s3cr3t-value-0123456789"
POD_KIND = ("", "v1", "pods")

# kind -> what app_deploy is given for it
KINDS: dict[str, dict[str, Any]] = {
    "streamlit": {"kind": "streamlit", "entry": "app.py"},
    "gradio": {"kind": "gradio", "entry": "app.py"},
    "custom": {"kind": "custom", "command": "python -m http.server $PORT"},
}
HEALTH = {
    "streamlit": "/apps/vision/{name}/_stcore/health",
    "gradio": "/apps/vision/{name}/config",
    "custom": "/apps/vision/{name}/",
}


def _source(user, kind: str) -> str:
    if kind == "custom":
        return put_files(user, "custom-app", {"index.html": "<h1>hello</h1>\n"})
    return put_example(user, f"{kind}-demo")


def deploy(user, team, cluster: Cluster, kind: str, *, name: str = "demo", gpu: int = 0, image: str = "") -> App:
    return services.app_deploy(
        user=user, team=team, name=name, source=_source(user, kind), cluster=cluster.name, gpu=gpu, image=image,
        env={"GREETING": "hello"}, secrets={"API_KEY": SECRET}, **KINDS[kind],
    )  # fmt: skip


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


# --- 1. the manifests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("volcano", [False, True], ids=["default-scheduler", "volcano"])
@pytest.mark.parametrize("gpu", [0, 1])
@pytest.mark.parametrize("ingress", ["", "apps.example.org"], ids=["no-ingress", "ingress"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_an_app_renders_as_a_strict_pod_serving_under_its_path(kube, owner, team, kind, ingress, gpu, volcano):
    cluster = make_cluster(
        kube, is_default=True, ingress_host=ingress,
        scheduler=Cluster.Scheduler.VOLCANO if volcano else Cluster.Scheduler.DEFAULT,
    )  # fmt: skip
    image = "registry.example/apps:2" if gpu else ""
    app = deploy(owner, team, cluster, kind, gpu=gpu, image=image)
    job = Job.objects.select_related("cluster", "team", "owner").get(pk=app.job_id)
    assert job.framework == "app" and [t.name for t in job.tasks.all()] == [APP_TASK]

    description = describe(job)
    objects = cluster.backend().render(description)
    assert objects == m.render(description, cluster)
    for obj in objects:
        assert validate_manifest(obj) == [], (obj["kind"], validate_manifest(obj))
    kinds = [obj["kind"] for obj in objects]
    assert kinds == ["Pod"]

    pod = objects[0]
    assert pod["metadata"]["name"] == job.public_id and pod["metadata"]["namespace"] == NS
    (container,) = pod["spec"]["containers"]
    assert container["image"] == (image or settings.EASYAI_APP_IMAGE)

    # The server, told its base path and its port.
    script = " ".join(container["command"])
    base = "/apps/vision/demo"
    assert base in script
    if kind == "streamlit":
        assert "streamlit run app.py" in script and f"--server.baseUrlPath {base}" in script
    elif kind == "gradio":
        assert f"GRADIO_ROOT_PATH={base}" in script and "python app.py" in script
    else:
        assert "PORT=" in script and f"EASYAI_APP_BASE_PATH={base}" in script
        assert "python -m http.server $PORT" in script
    bind = {"streamlit": "--server.address 0.0.0.0", "gradio": "GRADIO_SERVER_NAME=0.0.0.0", "custom": "HOST=0.0.0.0"}
    assert bind[kind] in script  # in a pod it listens on the pod's IP, where the proxy goes
    env = _env(container)
    assert env["EASYAI_PORT_WEB"] == str(specs.APP_PORT)
    assert container["ports"] == [{"name": WEB_PORT, "containerPort": specs.APP_PORT, "protocol": "TCP"}]

    # Its code, read-only at /app, from the revision's folder on the NFS export.
    revision = app.revision.number
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/app"] == {
        "name": m.NFS_VOLUME, "mountPath": "/app", "subPath": f"apps/vision/demo/{revision}", "readOnly": True,
    }  # fmt: skip
    assert env["app_dir"] == "/app"
    (nfs,) = [v for v in pod["spec"]["volumes"] if v["name"] == m.NFS_VOLUME]
    assert nfs["nfs"] == {"server": "nfs.example.org", "path": "/export/easyai"}
    assert description.tasks[0].storage["app_dir"] == f"/export/easyai/apps/vision/demo/{revision}"

    limits = container["resources"]["limits"]
    if gpu:
        assert limits["nvidia.com/gpu"] == "1" and container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    else:
        assert "nvidia.com/gpu" not in limits

    annotations = pod["metadata"].get("annotations") or {}
    if volcano:
        assert annotations[m.VC_QUEUE_ANNOTATION] == NS and pod["spec"]["schedulerName"] == "volcano"
    else:
        assert m.VC_QUEUE_ANNOTATION not in annotations and "schedulerName" not in pod["spec"]

    # Its secrets reach the container's environment, and nothing stored or shown about the job.
    assert env["API_KEY"] == SECRET and env["GREETING"] == "hello"
    stored = Job.objects.get(pk=job.pk)
    assert "API_KEY" not in stored.spec.get("env", {}) and SECRET not in str(stored.spec)
    assert SECRET not in job_spec.to_yaml(stored.spec) and "API_KEY" not in job_spec.to_yaml(stored.spec)
    assert stored.spec["app_source"] == f"demo/{revision}"

    # It sees its code and its job's own folders: not its owner's workspaces or data.
    assert "/workspace/personal" not in mounts and "/workspace/public" not in mounts and "/data_dir" not in mounts
    assert "data_dir" not in env and env["HOME"] == "/tmp" and container.get("workingDir", "/app") == "/app"
    assert SECRET not in str(objects[1:])


# --- 2. an app's life on the fake API server ---------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    """The app in its pod: 200 to any GET, each path noted."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def _serve_on_loopback(port: int) -> ThreadingHTTPServer:
    """The app's server on a loopback address (127.0.0.x) where nothing else listens on ``port``: its pod IP."""
    for last in range(7, 250):
        try:
            return ThreadingHTTPServer((f"127.0.0.{last}", port), _Health)
        except OSError:
            continue
    pytest.skip(f"no loopback address with port {port} free")


@pytest.fixture
def pod_server() -> Iterator[ThreadingHTTPServer]:
    """Something listening where the app's pod would: a loopback pod IP, the app's container port."""
    server = _serve_on_loopback(specs.APP_PORT)
    server.daemon_threads = True
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def pod_runs(kube: FakeKube, name: str, ip: str) -> None:
    """Play the kubelet: the pod runs, with an IP."""
    pod = kube.get(*POD_KIND, NS, name)
    container = pod["spec"]["containers"][0]["name"]
    kube.set_status(
        *POD_KIND, NS, name,
        {"phase": "Running", "podIP": ip, "startTime": "2026-01-01T00:00:00Z",
         "containerStatuses": [{"name": container, "ready": True, "restartCount": 0,
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    )  # fmt: skip


def _fresh(app: App) -> App:
    return (
        App.objects.select_related("team", "job", "revision", "cluster").prefetch_related("job__tasks").get(pk=app.pk)
    )


def _pods(kube: FakeKube) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.of_kind(*POD_KIND))


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_app_lives_its_life_on_kubernetes(kube, owner, team, kind, pod_server, django_capture_on_commit_callbacks):
    ip = pod_server.server_address[0]
    cluster = make_cluster(kube, is_default=True)
    with django_capture_on_commit_callbacks(execute=True):  # the submit worker runs (django-q2 inline)
        app = deploy(owner, team, cluster, kind)
    app = _fresh(app)
    job_id = app.job.public_id
    assert _pods(kube) == [job_id]
    (created,) = [r for r in kube.requests("POST", rf"^/api/v1/namespaces/{NS}/pods$")]
    assert created.status == 201 and created.query.get("fieldValidation") == "Strict"
    assert validate_manifest(created.body) == []
    assert app.job.state == "pending" and app.state == AppState.STARTING

    # The pod runs: a sync pass records the task running at the pod's address and probes its health check.
    pod_runs(kube, job_id, ip)
    job_sync.cluster_sync(cluster)
    app = _fresh(app)
    task = Task.objects.get(job=app.job, role="app", index=0)
    assert app.job.state == "running" and task.state == "running"
    assert task.endpoints == {WEB_PORT: f"{ip}:{specs.APP_PORT}"}
    probe = specs.app_readiness(
        readiness.Endpoint(cluster, job_id, "app", APP_TASK, WEB_PORT, task.endpoints[WEB_PORT])
    )
    assert probe == readiness.Probe(f"{ip}:{specs.APP_PORT}", HEALTH[kind].format(name="demo"))
    assert pod_server.paths == [HEALTH[kind].format(name="demo")]  # the pass asked the app itself
    assert task.ready_endpoints == [WEB_PORT] and app.ready and app.state == AppState.RUNNING
    assert app.startup_seconds is not None

    # Stopped: the stop worker deletes the pod.
    with django_capture_on_commit_callbacks(execute=True):
        services.app_stop(user=owner, app=app)
    app = _fresh(app)
    assert _pods(kube) == [] and app.state == AppState.STOPPED and app.job.state == "stopped"
    assert kube.requests("DELETE", rf"^/api/v1/namespaces/{NS}/pods/{job_id}$")

    # Started again: a new run, a new pod.
    with django_capture_on_commit_callbacks(execute=True):
        services.app_start(user=owner, app=app)
    app = _fresh(app)
    assert app.job.public_id != job_id and _pods(kube) == [app.job.public_id]
    assert app.state == AppState.STARTING

    # Deleted: the pod goes, and the app with it; its runs stay in the jobs list.
    second = app.job.public_id
    with django_capture_on_commit_callbacks(execute=True):
        services.app_delete(user=owner, app=app)
    assert _pods(kube) == [] and not App.objects.filter(pk=app.pk).exists()
    assert Job.objects.get(public_id=second).state == "stopped"


# --- 3. the proxy's way to a running app ------------------------------------------------------------------


@pytest.mark.parametrize("ingress", ["", "apps.example.org"], ids=["no-ingress", "ingress"])
def test_the_proxy_goes_straight_to_a_ready_apps_pod_ip(
    kube, owner, team, ingress, pod_server, django_capture_on_commit_callbacks
):
    ip = pod_server.server_address[0]
    cluster = make_cluster(kube, is_default=True, ingress_host=ingress)
    with django_capture_on_commit_callbacks(execute=True):
        app = deploy(owner, team, cluster, "streamlit")
    job_id = _fresh(app).job.public_id
    pod_runs(kube, job_id, ip)
    job_sync.cluster_sync(cluster)
    assert _fresh(app).ready

    target = proxy.authorize(owner, "vision", "demo")
    assert target.address == f"{ip}:{specs.APP_PORT}"  # the pod, never the ingress
    assert "apps.example.org" not in target.address
    assert target.prefix == "/apps/vision/demo/" and target.job_id == job_id
    assert target.host == "" and not target.strip_prefix  # the app serves under its full path

    # What the cluster holds for it, and what a stop leaves: nothing.
    services_on_cluster = kube.of_kind("", "v1", "services")
    ingresses = kube.of_kind("networking.k8s.io", "v1", "ingresses")
    assert services_on_cluster == [] and ingresses == []  # an app's run is reached at its pod's address only
    with django_capture_on_commit_callbacks(execute=True):
        services.app_stop(user=owner, app=_fresh(app))
    assert _pods(kube) == [] and kube.of_kind("", "v1", "services") == []
    assert kube.of_kind("networking.k8s.io", "v1", "ingresses") == []
    with pytest.raises(proxy.Refused) as refused:
        proxy.authorize(owner, "vision", "demo")
    assert refused.value.status == 503 and not isinstance(refused.value, proxy.Waking)  # stopped, not waking
