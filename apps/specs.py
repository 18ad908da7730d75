"""An app's job spec and health check, built without side effects.

Each kind is told its base path (``/apps/{team}/{name}``) so that its links, assets and sockets work under the
prefix the proxy serves it at, and listens on the port of its ``web`` endpoint (``$EASYAI_PORT_WEB``: a free
host port locally, ``APP_PORT`` in a pod):

- Streamlit: ``streamlit run ENTRY --server.baseUrlPath … --server.port …``; healthy when
  ``{base}/_stcore/health`` answers;
- Gradio: the entry file is run with ``GRADIO_ROOT_PATH``, ``GRADIO_SERVER_NAME`` and ``GRADIO_SERVER_PORT``
  set (``demo.launch()`` reads them); healthy when its configuration route ``{base}/config`` answers;
- custom: its own command, with ``PORT`` and ``EASYAI_APP_BASE_PATH``; healthy when ``{base}/`` answers.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.models import APP_TASK, WEB_PORT, App, AppKind, AppRevision, app_path
from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs import readiness

APP_PORT = 8501  # where an app listens in a pod; locally its web port is a free host port


def base_path(team: str, name: str) -> str:
    """The prefix an app is told it is served under, without the trailing slash."""
    return app_path(team, name).rstrip("/")


def bind_address(cluster: Cluster) -> str:
    # Locally only the portal (on this host) reaches it: its proxy is the only way in. In a pod, the pod's IP.
    return "127.0.0.1" if cluster.kind == Cluster.Kind.LOCAL else "0.0.0.0"


def app_command(app: App, revision: AppRevision, cluster: Cluster) -> str:
    """The shell command of an app's task: into its code's folder, then its server."""
    base = base_path(app.team.slug, app.name)
    host = bind_address(cluster)
    start = 'cd "$app_dir" && '
    if revision.kind == AppKind.STREAMLIT:
        return start + (
            f"exec python -m streamlit run {shlex.quote(revision.entry)} "
            f'--server.address {host} --server.port "$EASYAI_PORT_WEB" --server.baseUrlPath {base} '
            "--server.headless true --browser.gatherUsageStats false --server.fileWatcherType none "
            "--server.runOnSave false"
        )
    if revision.kind == AppKind.GRADIO:
        return start + (
            f'GRADIO_SERVER_NAME={host} GRADIO_SERVER_PORT="$EASYAI_PORT_WEB" GRADIO_ROOT_PATH={base} '
            f"GRADIO_ANALYTICS_ENABLED=False exec python {shlex.quote(revision.entry)}"
        )
    # Exported first, so that the command's own words may use them ("--port $PORT"), and run by a shell of its
    # own, so that a command of several parts ("a && b") is the command as written.
    return start + (
        f'export PORT="$EASYAI_PORT_WEB" EASYAI_APP_BASE_PATH={base} HOST={host}; '
        f"exec /bin/sh -c {shlex.quote(revision.command)}"
    )


def code_dir(app: App, revision: AppRevision, cluster: Cluster) -> str:
    """Where the run sees its code (``$app_dir``): the revision's folder locally, /app in a pod."""
    if cluster.kind == Cluster.Kind.LOCAL:
        root = Path(settings.EASYAI_STORAGE_ROOT)
        return str(root / storage.app_source_dir(app.team.slug, revision.source_ref))
    return "/app"


def app_spec(app: App, revision: AppRevision, cluster: Cluster) -> dict[str, Any]:
    """The job that runs one revision of the app: in its code's folder, with its own /tmp as home (it sees
    neither its owner's workspaces nor their data)."""
    return {
        "name": app.name,
        "team": app.team.slug,
        "cluster": cluster.name,
        "framework": "app",
        "image": app.image or settings.EASYAI_APP_IMAGE,
        "command": app_command(app, revision, cluster),
        "working_dir": code_dir(app, revision, cluster),
        "env": {"HOME": "/tmp", **app.env},
        "roles": {"app": {"replicas": 1, "cpu": app.cpu, "memory": app.memory, "gpu": app.gpu}},
        "ports": {WEB_PORT: APP_PORT},
        "app_source": revision.source_ref,
    }


def health_path(kind: str, team: str, name: str) -> str:
    base = base_path(team, name)
    if kind == AppKind.STREAMLIT:
        return f"{base}/_stcore/health"
    if kind == AppKind.GRADIO:
        return f"{base}/config"
    return f"{base}/"


def app_readiness(endpoint: readiness.Endpoint) -> readiness.Probe | None:
    """The health check of an app's run (``jobs/readiness.py``: the sync pass probes it), straight to its task."""
    if endpoint.framework != "app" or endpoint.name != WEB_PORT or endpoint.task != APP_TASK:
        return None
    app = App.objects.filter(job__public_id=endpoint.job_id).select_related("team", "revision").first()
    if app is None or app.revision is None:
        return None
    return readiness.Probe(endpoint.address, health_path(app.revision.kind, app.team.slug, app.name))
