"""A notebook's job spec, built without side effects: the server's command with its base URL under the
endpoint proxy, its web endpoint, the workspaces, the oversold resources."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

from clusters.backends.contract import storage
from clusters.models import Cluster
from notebooks.models import NOTEBOOK_TASK, Notebook

# Where the servers listen inside a pod; locally each named port gets a free host port instead.
JUPYTER_PORT = 8888
VSCODE_PORT = 8080


def local_program(program: str) -> str | None:
    """A program as a local task finds it: the portal's Python's bin first, then PATH (contract.task_env)."""
    here = Path(sys.executable).parent / program
    return str(here) if here.exists() else shutil.which(program)


def code_server() -> str | None:
    """code-server as a local VS Code notebook runs it: EASYAI_CODE_SERVER when set (a path; absent when nothing
    runs there), else the one notebooks/vscode/install.sh put beside the portal's Python, else PATH's."""
    configured = settings.EASYAI_CODE_SERVER
    if configured:
        path = Path(configured)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return local_program("code-server")


def _workspaces(cluster: Cluster, owner: str) -> tuple[str, str]:
    if cluster.kind == Cluster.Kind.LOCAL:
        root = Path(settings.EASYAI_STORAGE_ROOT)
        return str(storage.personal_workspace(root, owner)), str(storage.public_workspace(root))
    return "/workspace/personal", "/workspace/public"


def bind_address(cluster: Cluster) -> str:
    # Locally only the portal (on this host) may reach the server: its proxy is the only way in. In a pod
    # the portal comes from outside, to the pod's IP.
    return "127.0.0.1" if cluster.kind == Cluster.Kind.LOCAL else "0.0.0.0"


def notebook_command(notebook: Notebook, cluster: Cluster) -> str:
    """The server's command line; the job id is known only when the job is recorded, so it comes from the env."""
    personal, _public = _workspaces(cluster, notebook.owner.username)
    base = f'/endpoints/"$EASYAI_JOB_ID"/{NOTEBOOK_TASK}/{notebook.endpoint_name}/'
    if notebook.kind == Notebook.Kind.VSCODE:
        # Locally the one code_server() finds (the portal refuses the kind when there is none); in a pod the
        # image's. Its settings and extensions stay in HOME (locally the personal workspace); its session
        # socket is the run's own, so two runs sharing a HOME do not take each other's. --auth password: the
        # backend gives it HASHED_PASSWORD, a hash only the portal can make, which code-server takes as its
        # session cookie; the portal's proxy (which lets only the owner through) sends that cookie. Others who
        # reach the server (a pod's IP; locally every task shares the host's loopback) get its login page.
        program = (code_server() or "code-server") if cluster.kind == Cluster.Kind.LOCAL else "code-server"
        return (
            f'exec {shlex.quote(program)} --bind-addr {bind_address(cluster)}:"$EASYAI_PORT_VSCODE" --auth password '
            f'--session-socket /tmp/code-server-"$EASYAI_JOB_ID".sock --disable-workspace-trust '
            f"--disable-telemetry --disable-update-check {shlex.quote(personal)}"
        )
    root_dir = personal if cluster.kind == Cluster.Kind.LOCAL else "/workspace"
    # No password: the portal's proxy authenticates every request and only the owner gets through. The server
    # demands a token all the same, one only the portal can make: the backend gives it as JUPYTER_TOKEN (in
    # the pod on a cluster, in the task's environment locally) and the proxy sends it. Others reach the server
    # too (a pod's IP or an ingress; locally every task shares the host's loopback), and must not use it.
    # Jupyter's XSRF check stays on (its cookie passes the proxy). allow_remote_access: requests arrive with
    # the portal's Host header, not localhost.
    return (
        f'exec jupyter lab --no-browser --allow-root --ip={bind_address(cluster)} --port="$EASYAI_PORT_JUPYTER" '
        f"--ServerApp.base_url={base} --PasswordIdentityProvider.hashed_password= "
        f"--ServerApp.allow_remote_access=True --LabApp.extension_manager=readonly "
        f"--ServerApp.root_dir={shlex.quote(root_dir)}"
    )


def notebook_spec(notebook: Notebook, cluster: Cluster) -> dict[str, Any]:
    personal, public = _workspaces(cluster, notebook.owner.username)
    vscode = notebook.kind == Notebook.Kind.VSCODE
    image = notebook.image or (settings.EASYAI_VSCODE_IMAGE if vscode else settings.EASYAI_NOTEBOOK_IMAGE)
    env = {"EASYAI_WORKSPACE_PERSONAL": personal, "EASYAI_WORKSPACE_PUBLIC": public}
    if cluster.kind == Cluster.Kind.LOCAL:
        # A task runs as the sandbox's user, whose login shell is nologin: the servers' terminals start bash.
        env["SHELL"] = shutil.which("bash") or "/bin/sh"
    return {
        "name": notebook.name,
        "team": notebook.team.slug,
        "cluster": cluster.name,
        "framework": "notebook",
        "image": image,
        "command": notebook_command(notebook, cluster),
        "env": env,
        "roles": {"notebook": {"replicas": 1, "cpu": notebook.cpu, "memory": notebook.memory, "gpu": notebook.gpu}},
        # A notebook mostly waits for its user: it asks for a share of its limits (GPUs are never oversold).
        "scheduling": {"oversell": settings.EASYAI_NOTEBOOK_OVERSELL},
        "ports": {notebook.endpoint_name: VSCODE_PORT if vscode else JUPYTER_PORT},
    }
