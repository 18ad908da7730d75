"""A notebook is "running" only once its server answers, and the proxy routes to an endpoint only then.

The sync pass probes each endpoint that has a readiness check (a notebook's Jupyter at its
``api/status``, where the proxy reaches it) and records the answer on the task; the API and the pages
read that record and never probe themselves.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlsplit

import pytest

from clusters.backends.base import ObservedState
from endpoints.proxy import Refused, authorize
from jobs import readiness, tasks
from jobs import services as job_services
from jobs import workers as job_workers
from jobs.models import Task
from notebooks import services, tensorboard
from notebooks.models import NOTEBOOK_TASK, Notebook
from notebooks.tests.conftest import wait_until
from testing.web import fetch


class FakeJupyter(BaseHTTPRequestHandler):
    """Answers as a started Jupyter Server does at ``…/api/status``; records what it was asked."""

    status = 200
    asked: list[str] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = json.dumps({"started": "", "last_activity": "", "kernels": 0}).encode()
        self.send_response(self.status if self.path.endswith("/api/status") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve() -> Iterator:
    """serve(port, status) -> a FakeJupyter on 127.0.0.1:port answering ``status`` at api/status."""
    servers = []

    def start(port: int, status: int = 200) -> type[FakeJupyter]:
        handler = type("Jupyter", (FakeJupyter,), {"status": status, "asked": []})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        return handler

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def notebook(fake_backend, people, team, django_capture_on_commit_callbacks) -> Notebook:
    with django_capture_on_commit_callbacks(execute=True):
        return services.notebook_create(user=people["owner"], team=team, name="lab", cpu="1", memory="1Gi")


def runs_at(fake_backend, notebook: Notebook, address: str) -> None:
    """The backend reports the notebook's task running at ``address``; one sync pass sees it."""
    fake_backend.set_state(notebook.job.public_id, ObservedState.RUNNING, endpoints={"jupyter": address})
    job_workers.cluster_sync(fake_backend.cluster)


def state_of(api, owner, notebook: Notebook) -> str:
    return api(owner).get(f"/api/v1/notebooks/{notebook.pk}/").json()["state"]


def proxy_answer(owner, notebook: Notebook) -> int | str:
    """What the proxy decides for the notebook's endpoint: the address it relays to, or the refusal's status."""
    try:
        return authorize(owner, notebook.job.public_id, NOTEBOOK_TASK, "jupyter").address
    except Refused as refused:
        return refused.status


@pytest.mark.django_db
def test_a_notebook_whose_server_does_not_answer_yet_is_starting_and_the_proxy_does_not_route_to_it(
    api, people, notebook, fake_backend, serve
):
    owner = people["owner"]
    port = free_port()  # the backend reports the address before anything listens there
    runs_at(fake_backend, notebook, f"127.0.0.1:{port}")
    assert notebook.job.tasks.get().endpoints == {"jupyter": f"127.0.0.1:{port}"}
    assert state_of(api, owner, notebook) == "starting"
    assert proxy_answer(owner, notebook) == 503

    jupyter = serve(port)  # Jupyter now listens: the next pass finds it answering
    job_workers.cluster_sync(fake_backend.cluster)
    assert state_of(api, owner, notebook) == "running"
    assert proxy_answer(owner, notebook) == f"127.0.0.1:{port}"
    # The check went where the proxy goes, to Jupyter's status under the notebook's base URL.
    assert jupyter.asked == [f"/endpoints/{notebook.job.public_id}/{NOTEBOOK_TASK}/jupyter/api/status"]


@pytest.mark.django_db
def test_a_server_answering_an_error_is_not_ready(api, people, notebook, fake_backend, serve):
    port = free_port()
    jupyter = serve(port, status=503)  # as an ingress answers while the Service has no ready pod
    runs_at(fake_backend, notebook, f"127.0.0.1:{port}")
    job_workers.cluster_sync(fake_backend.cluster)
    assert len(jupyter.asked) == 2  # asked on each pass until it answers
    assert state_of(api, people["owner"], notebook) == "starting"
    assert proxy_answer(people["owner"], notebook) == 503


@pytest.mark.django_db
def test_reading_the_state_never_probes_and_a_ready_endpoint_is_not_probed_again(
    api, people, notebook, fake_backend, serve, monkeypatch
):
    port = free_port()
    jupyter = serve(port)
    runs_at(fake_backend, notebook, f"127.0.0.1:{port}")
    assert len(jupyter.asked) == 1

    def no_probe(*args, **kwargs):
        raise AssertionError("probed")

    monkeypatch.setattr(readiness, "answers", no_probe)
    assert state_of(api, people["owner"], notebook) == "running"
    assert api(people["owner"]).get("/api/v1/notebooks/").json()["results"][0]["state"] == "running"
    job_workers.cluster_sync(fake_backend.cluster)  # recorded ready at this address: nothing to ask
    assert len(jupyter.asked) == 1


@pytest.mark.django_db
def test_a_new_address_is_checked_again_before_the_notebook_is_running_again(
    api, people, notebook, fake_backend, serve
):
    owner = people["owner"]
    first = free_port()
    serve(first)
    runs_at(fake_backend, notebook, f"127.0.0.1:{first}")
    assert state_of(api, owner, notebook) == "running"
    # The pod was replaced: the same task now runs at an address where nothing answers yet.
    second = free_port()
    runs_at(fake_backend, notebook, f"127.0.0.1:{second}")
    assert Task.objects.get(job=notebook.job).ready_endpoints == []
    assert state_of(api, owner, notebook) == "starting"
    assert proxy_answer(owner, notebook) == 503
    serve(second)
    job_workers.cluster_sync(fake_backend.cluster)
    assert state_of(api, owner, notebook) == "running"


@pytest.mark.django_db
def test_an_ended_task_keeps_no_ready_endpoint(api, people, notebook, fake_backend, serve):
    port = free_port()
    serve(port)
    runs_at(fake_backend, notebook, f"127.0.0.1:{port}")
    assert Task.objects.get(job=notebook.job).ready_endpoints == ["jupyter"]
    fake_backend.set_state(notebook.job.public_id, ObservedState.FAILED, exit_code=1)
    job_workers.cluster_sync(fake_backend.cluster)
    task = Task.objects.get(job=notebook.job)
    assert (task.endpoints, task.ready_endpoints) == ({}, [])
    assert state_of(api, people["owner"], notebook) == "stopped"


@pytest.mark.django_db
def test_a_jobs_own_port_has_no_check_and_is_ready_when_its_address_is_known(
    owner, fake_backend, django_capture_on_commit_callbacks
):
    spec = {"name": "web", "framework": "batch", "command": "serve", "roles": {"main": {}}, "ports": {"web": 8080}}
    with django_capture_on_commit_callbacks(execute=True):
        job = job_services.job_submit(user=owner, data=spec)
    address = f"127.0.0.1:{free_port()}"  # nothing answers, and nothing is asked: there is no check
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, endpoints={"web": address})
    job_workers.cluster_sync(fake_backend.cluster)
    task = job.tasks.get()
    assert (task.endpoints, task.ready_endpoints) == ({"web": address}, ["web"])
    assert authorize(owner, job.public_id, "main-0", "web").address == address


@pytest.mark.django_db
def test_a_tensorboard_is_ready_only_once_its_page_answers(
    api, people, fake_backend, serve, client, django_capture_on_commit_callbacks
):
    owner = people["owner"]
    spec = {"name": "train", "framework": "batch", "command": "true", "roles": {"main": {}}}
    trained = job_services.job_submit(user=owner, data=spec)
    for _name, summaries in tensorboard.summary_dirs(trained):
        summaries.mkdir(parents=True)
        (summaries / "events.out.tfevents.1").write_bytes(b"")
    with django_capture_on_commit_callbacks(execute=True):
        board, _created = services.tensorboard_open(user=owner, job_ids=[trained.public_id])
    url = f"/api/v1/tensorboards/{board.pk}/"
    port = free_port()
    fake_backend.set_state(board.job.public_id, ObservedState.RUNNING, endpoints={"tensorboard": f"127.0.0.1:{port}"})
    job_workers.cluster_sync(fake_backend.cluster)
    body = api(owner).get(url).json()
    assert (body["state"], body["ready"]) == ("running", False)  # its job runs; TensorBoard does not answer yet
    client.force_login(owner)
    assert client.get(f"/tensorboards/{board.pk}/open/").status_code == 202  # the page that waits
    assert "starting" in client.get("/tensorboards/").content.decode()

    class Page(FakeJupyter):
        asked: list[str] = []

        def do_GET(self) -> None:
            type(self).asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        job_workers.cluster_sync(fake_backend.cluster)
    finally:
        server.shutdown()
        server.server_close()
    assert Page.asked == [board.path]  # its page, under --path_prefix
    assert api(owner).get(url).json()["ready"] is True
    assert client.get(f"/tensorboards/{board.pk}/open/")["Location"] == "http://localhost:8001" + board.path


# --- a real JupyterLab, polled as a script would poll it -------------------------------------------


def open_url(port: int, url: str, user) -> int:
    """The status a token client gets at ``url``, following redirects (the test server serves every host)."""
    for _hop in range(4):
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        status, headers, _body = fetch(port, target, user=user, Host=parts.netloc)
        if status not in (301, 302, 303, 307, 308) or not headers.get("Location"):
            break
        url = urljoin(url, headers["Location"])
    return status


@pytest.mark.slow
def test_a_notebook_is_never_reported_running_while_its_url_does_not_answer(
    asgi_server, local_cluster, stop_all, people, settings
):
    """From creation, every 0.1 s: the API's state, then the notebook's URL. "running" means the URL answers."""
    owner, port = people["owner"], asgi_server.port
    # The scheduler's part: a sync pass over the cluster at the local cadence, while the test polls.
    done, failures = threading.Event(), []

    def scheduler() -> None:
        from django.db import connection

        try:
            while not done.is_set():
                tasks.sync_cluster(local_cluster.pk)
                done.wait(settings.EASYAI_LOCAL_SYNC_INTERVAL)
        except Exception as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            connection.close()

    body = json.dumps({"name": "lab", "cpu": "1", "memory": "1Gi"}).encode()
    status, _headers, created = fetch(
        port, "/api/v1/notebooks/", method="POST", user=owner, body=body, Content_Type="application/json"
    )
    assert status == 201, created
    detail_path = f"/api/v1/notebooks/{json.loads(created)['id']}/"
    passes = threading.Thread(target=scheduler, daemon=True)
    passes.start()
    seen: list[tuple[str, int]] = []

    def poll() -> bool:
        assert not failures, failures
        state = json.loads(fetch(port, detail_path, user=owner)[2])
        assert state["state"] != "stopped", state
        seen.append((state["state"], open_url(port, state["url"], owner)))
        return sum(1 for s, _ in seen if s == "running") >= 5  # a few polls after it turned running, too

    try:
        wait_until(poll, 120, "the notebook to run", every=0.1)
    finally:
        done.set()
        passes.join(10)
    assert not failures, failures
    running = [answer for state, answer in seen if state == "running"]
    assert running and all(answer == 200 for answer in running), seen
    # The poll began before Jupyter answered: the wait was shown as "starting", while the URL did not answer.
    assert seen[0][0] == "starting" and any(s == "starting" and answer >= 500 for s, answer in seen), seen


def test_probes_of_one_pass_run_together():
    """Endpoints that hang cost a pass one timeout together, not one each."""
    listeners = []
    for _ in range(4):  # accept connections (the backlog) and never answer
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        listeners.append(sock)
    probes = [(i, readiness.Probe(f"127.0.0.1:{s.getsockname()[1]}", "/")) for i, s in enumerate(listeners)]
    started = time.monotonic()
    try:
        assert readiness.probe_all(probes) == set()
    finally:
        for sock in listeners:
            sock.close()
    assert time.monotonic() - started < 2 * readiness.PROBE_TIMEOUT_S


def test_a_probe_reaches_a_host_name_and_refuses_what_is_not_an_address(serve):
    port = free_port()
    serve(port)
    assert readiness.answers(
        readiness.Probe(f"localhost:{port}", "/endpoints/j-abcdefgh/notebook-0/jupyter/api/status")
    )
    assert not readiness.answers(readiness.Probe(f"localhost:{port}", "/elsewhere"))  # a 404 is not ready
    assert not readiness.answers(readiness.Probe("localhost:99999", "/"))
    assert not readiness.answers(readiness.Probe("", "/"))
