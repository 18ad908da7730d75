"""A notebook on the local backend is a sandboxed task: its kernel, driven through the proxy as JupyterLab does,
reaches nothing of the portal, and its Jupyter server answers no one on the host's loopback without the portal's
token."""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid

import pytest
from websockets.sync.client import ClientConnection, connect

from clusters.backends.local import tools
from clusters.crypto import endpoint_token
from notebooks import services
from notebooks.tests.conftest import _execute_request, _stream_output, _xsrf, wait_running
from testing.isolation import (
    ATTACK,
    CANARY,
    assert_nothing_leaked,
    attack_targets,
    needs_sandbox,
    other_users_files,
    report_of,
    with_the_toolbox,
)
from testing.web import fetch, token_for, wait_answering

pytestmark = pytest.mark.slow


def _kernel_socket(port: int, path: str, owner, xsrf: str) -> ClientConnection:
    """The kernel's websocket through the proxy, on the endpoint origin's host (as the browser opens it)."""
    from endpoints.origin import origin

    netloc = f"{origin().host}:{port}"
    return connect(
        f"ws://{netloc}{path}",
        sock=socket.create_connection(("127.0.0.1", port), timeout=30),
        origin=f"http://{netloc}",
        additional_headers={"Authorization": f"Token {token_for(owner)}", "Cookie": f"_xsrf={xsrf}"},
        open_timeout=30,
        max_size=None,
    )


def _direct(address: str, path: str, token: str = "") -> int:
    """A request straight to the server's port, as another task on this host's loopback could make."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        return connection.getresponse().status
    finally:
        connection.close()


@needs_sandbox
def test_a_notebook_kernel_reaches_nothing_of_the_portal_and_jupyter_demands_the_portals_token(
    portal_layout, asgi_server, local_cluster, stop_all, people, team
):
    owner = people["owner"]
    notebook = services.notebook_create(user=owner, team=team, name="lab", cpu="1", memory="1Gi")
    job = notebook.job
    notebook = wait_running(notebook, local_cluster)
    task = job.tasks.get()
    port = asgi_server.port
    base = f"/endpoints/{job.public_id}/notebook-0/jupyter/"
    wait_answering(port, base + "api/status", owner)

    # Straight to the server, without the token only the portal can make: refused; with it: served.
    address = task.endpoints["jupyter"]
    assert _direct(address, base + "api/status") == 403
    assert _direct(address, base + "api/contents") == 403
    assert _direct(address, base + "api/status", token=endpoint_token(job.public_id)) == 200

    # The kernel, through the proxy, goes after the portal, other users and this process's environment.
    targets = attack_targets(
        portal_layout, job.public_id, others=other_users_files(), kill=[os.getpid()], write=[], owner=owner.username
    )
    if tools.can_wrap():
        with_the_toolbox(targets, local_cluster.backend(), job.public_id, task="notebook-0")
    targets["kill_all"] = False  # it would end its own Jupyter server, and with it the answer
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
    cell = f"import sys\nsys.argv = ['attack', {json.dumps(json.dumps(targets))}]\nexec({ATTACK!r})"
    with _kernel_socket(port, channels, owner, xsrf) as ws:
        printed = _stream_output(ws, _execute_request(cell, uuid.uuid4().hex), binary=False)

    report = report_of(printed)
    assert_nothing_leaked(report, targets)
    assert CANARY not in printed
