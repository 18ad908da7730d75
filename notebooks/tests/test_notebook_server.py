"""A real JupyterLab on the local backend, reached through the portal's endpoint proxy on a real ASGI server."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from websockets.sync.client import ClientConnection, connect

from jobs.models import Job
from jobs.state import JobState
from notebooks import services, workers
from notebooks.models import Notebook
from notebooks.tests.conftest import _execute_request, _stream_output, _xsrf, wait_running, wait_until
from testing.web import fetch, token_for, wait_answering

pytestmark = pytest.mark.slow

BINARY_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def _kernel_socket(server, path: str, owner, xsrf: str, **kwargs) -> ClientConnection:
    return connect(
        f"ws://localhost:{server.port}{path}",  # the endpoint origin (endpoints/origin.py)
        origin=f"http://localhost:{server.port}",  # as a browser on JupyterLab's page sends it; Jupyter compares it with Host
        additional_headers={"Authorization": f"Token {token_for(owner)}", "Cookie": f"_xsrf={xsrf}"},
        open_timeout=30,
        max_size=None,
        **kwargs,
    )


def test_a_local_notebook_runs_cells_through_the_proxy_and_only_its_owner_reaches_it(
    asgi_server, local_cluster, stop_all, people, team
):
    owner = people["owner"]
    notebook = services.notebook_create(user=owner, team=team, name="lab", cpu="1", memory="1Gi")
    job = notebook.job
    assert job.framework == "notebook" and job.spec["ports"] == {"jupyter": 8888}
    assert job.spec["scheduling"]["oversell"] == 4.0
    notebook = wait_running(notebook, local_cluster)
    task = job.tasks.get()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", task.endpoints["jupyter"]), task.endpoints
    assert task.endpoints["jupyter"] != "127.0.0.1:8888"  # a free host port, not the spec's

    port = asgi_server.port
    base = f"/endpoints/{job.public_id}/notebook-0/jupyter/"
    status = json.loads(wait_answering(port, base + "api/status", owner))
    assert {"started", "last_activity", "kernels"} <= set(status)

    # Who else gets through: nobody. Outsiders do not learn it exists; team-mates and admins are refused.
    assert fetch(port, base + "api/status", user=people["outsider"])[0] == 404
    assert fetch(port, base + "api/status", user=people["mate"])[0] == 403
    assert fetch(port, base + "api/status", user=people["team_admin"])[0] == 403
    assert fetch(port, base + "api/status", user=people["staff"])[0] == 403
    # A browser without its endpoint cookie goes to the portal, which signs it in and sends it back with a ticket.
    code, headers, _ = fetch(port, base + "lab?reset", Accept="text/html")
    assert code == 302 and headers["Location"].startswith(f"{settings.SITE_URL}{base}lab?reset&_easyai_state=")
    assert fetch(port, base + "api/status")[0] == 401
    # The server itself is bound to the loopback: only this host, i.e. the portal's proxy, reaches it.
    assert task.endpoints["jupyter"].startswith("127.0.0.1:")

    # A kernel, created and run through the proxy as JupyterLab does (XSRF on: the cookie passes through).
    xsrf = _xsrf(port, base, owner)
    code, _headers, body = fetch(
        port,
        base + "api/kernels",
        method="POST",
        user=owner,
        body=b'{"name": "python3"}',
        Content_Type="application/json",
        Cookie=f"_xsrf={xsrf}",
        X_XSRFToken=xsrf,
    )
    assert code == 201, body
    kernel = json.loads(body)["id"]
    channels = f"{base}api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}"
    with _kernel_socket(asgi_server, channels, owner, xsrf) as ws:
        assert _stream_output(ws, _execute_request("print(6*7)", uuid.uuid4().hex), binary=False) == "42\n"
    # The binary protocol JupyterLab negotiates: the subprotocol passes, frames stay binary both ways.
    with _kernel_socket(asgi_server, channels, owner, xsrf, subprotocols=[BINARY_PROTOCOL]) as ws:
        assert ws.subprotocol == BINARY_PROTOCOL
        assert _stream_output(ws, _execute_request("print(6*7)", uuid.uuid4().hex), binary=True) == "42\n"
    # A team-mate cannot open the owner's kernel socket either.
    with pytest.raises(Exception, match="403"):
        _kernel_socket(asgi_server, channels, people["mate"], xsrf)

    # Idle: Jupyter's own last activity is the measure; an hour later with nothing run, it is stopped.
    assert workers.notebooks_idle() == []
    later = timezone.now() + timedelta(minutes=workers.idle_minutes() + 1)
    assert workers.notebooks_idle(later) == [notebook.pk]
    job.refresh_from_db()
    assert (job.state, job.reason) == (JobState.STOPPED, "idle")
    assert Notebook.objects.get(pk=notebook.pk).last_activity_at is not None
    assert fetch(port, base + "api/status", user=owner)[0] == 404  # its endpoint is gone with it

    # Started again (a new job for the same notebook, through the API), then its lease runs out.
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(owner)}")
    response = client.post(f"/api/v1/notebooks/{notebook.pk}/start/")
    assert response.status_code == 200, response.content
    second = Job.objects.get(public_id=response.json()["job"])
    assert second.pk != job.pk
    notebook = wait_running(Notebook.objects.get(pk=notebook.pk), local_cluster)
    detail = client.get(f"/api/v1/notebooks/{notebook.pk}/").json()
    assert detail["state"] == "running"
    assert detail["url"] == f"http://localhost:8001/endpoints/{second.public_id}/notebook-0/jupyter/lab"
    Notebook.objects.filter(pk=notebook.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert workers.notebooks_expire() == [notebook.pk]
    second.refresh_from_db()
    assert (second.state, second.reason) == (JobState.STOPPED, "lease_expired")
    assert client.get(f"/api/v1/notebooks/{notebook.pk}/").json()["reason"] == "lease_expired"
    wait_until(lambda: second.tasks.get().state != "running" or None, 30, "the server to end")
