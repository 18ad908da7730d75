"""Helpers of the notebooks tests: notebooks started on a local cluster (the plugin's local_cluster), a Jupyter client."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from websockets.sync.client import ClientConnection

from clusters.backends.contract import toolbox
from clusters.models import Cluster
from jobs import workers as job_workers
from notebooks.models import Notebook
from testing import wait
from testing.fakekube import NS, FakeKube
from testing.web import fetch


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.1) -> Any:
    """testing.wait's, with longer defaults: a notebook server takes a while to start."""
    return wait.wait_until(check, timeout, what, every=every)


def wait_running(notebook: Notebook, cluster: Cluster, timeout: float = 90.0) -> Notebook:
    """Sync the cluster until the notebook's server has an endpoint, as the scheduler's passes would."""

    def ready() -> Notebook | None:
        job_workers.cluster_sync(cluster)
        fresh = Notebook.objects.select_related("job").prefetch_related("job__tasks").get(pk=notebook.pk)
        assert fresh.job is not None and not fresh.job.is_final, (fresh.job.state, fresh.job.message)
        return fresh if fresh.state == "running" else None

    return wait_until(ready, timeout, f"notebook {notebook.name} to run", every=0.2)


# --- a Jupyter client: what JupyterLab's page does over HTTP and the kernel socket ---------------------------


def _xsrf(port: int, base: str, user) -> str:
    """What JupyterLab's page does: load it, keep the _xsrf cookie it sets (under the endpoint's path)."""
    status, headers, _body = fetch(port, base + "lab", user=user, Accept="text/html")
    assert status == 200
    cookies = [value for name, value in headers.items() if name.lower() == "set-cookie"]
    xsrf = next(c for c in cookies if c.startswith("_xsrf="))
    assert f"Path={base.rstrip('/')}" in xsrf or f"Path={base}" in xsrf, xsrf
    return xsrf.split(";", 1)[0].split("=", 1)[1]


def _execute_request(code: str, session: str) -> dict:
    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },  # fmt: skip
        "channel": "shell",
        "buffers": [],
    }


def _pack_v1(message: dict) -> bytes:
    """Jupyter Server's binary kernel protocol: offsets, then channel, header, parent, metadata, content."""
    parts = [json.dumps(message[key]).encode() for key in ("header", "parent_header", "metadata", "content")]
    channel = message["channel"].encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + channel + b"".join(parts)


def _unpack_v1(data: bytes) -> dict:
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)] + [len(data)]
    pieces = [data[offsets[i] : offsets[i + 1]] for i in range(count)]
    channel, header, parent, metadata, content = pieces[:5]
    return {
        "channel": channel.decode(),
        "header": json.loads(header),
        "parent_header": json.loads(parent),
        "metadata": json.loads(metadata),
        "content": json.loads(content),
    }


def _stream_output(ws: ClientConnection, request: dict, *, binary: bool) -> str:
    """Send an execute_request and read the kernel's stdout for it."""
    ws.send(_pack_v1(request) if binary else json.dumps(request))
    printed = ""
    while True:
        frame = ws.recv(timeout=30)
        assert isinstance(frame, bytes) == binary, type(frame)
        message = _unpack_v1(frame) if binary else json.loads(frame)
        if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
            continue
        if message["header"]["msg_type"] == "stream":
            printed += message["content"]["text"]
        if message["header"]["msg_type"] == "status" and message["content"]["execution_state"] == "idle" and printed:
            return printed


# --- on the fake Kubernetes API ------------------------------------------------------------------------


def created_pod(kube: FakeKube, job_id: str) -> dict[str, Any]:
    """The Pod body the API server received (a strictly validated create), as the client sent it."""
    (request,) = [r for r in kube.requests("POST", rf"^/api/v1/namespaces/{NS}/pods$")]
    assert request.status == 201 and request.query.get("fieldValidation") == "Strict"
    assert request.body["metadata"]["name"] == job_id
    return request.body


def argv_of(container: dict[str, Any]) -> list[str]:
    """The arguments the container's shell gives the server, with the container's environment."""
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    command = list(container["command"])
    wrapper = toolbox.wrapped_argv(toolbox.POD_TOOLS_DIR, [])
    if command[: len(wrapper)] == wrapper:  # the debug toolbox's wrapper runs the command
        command = command[len(wrapper) :]
    assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith("exec "), command
    script = "set -- " + command[2].removeprefix("exec ") + '\nfor a in "$@"; do printf "%s\\0" "$a"; done'
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]
