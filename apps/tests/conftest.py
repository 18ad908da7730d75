"""The apps tests' shared helpers: the examples copied into a workspace, requests to the endpoint origin, and
the site's clock's steps run by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings

from apps.models import App
from clusters.backends.contract import storage
from endpoints.origin import origin
from jobs.workers import sync as job_sync
from testing.wait import wait_until
from testing.web import fetch

REPO = Path(settings.BASE_DIR)
EXAMPLES = REPO / "examples" / "apps"


def workspace_of(user) -> Path:
    return storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), user.username)


def put_example(user, example: str, where: str = "") -> str:
    """Copy an example app into the user's personal workspace; the folder's name there (as a publish names it)."""
    target = workspace_of(user) / (where or example)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(EXAMPLES / example, target)
    return where or example


def put_files(user, folder: str, files: dict[str, str]) -> str:
    target = workspace_of(user) / folder
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    return folder


def get(port: int, path: str, user=None, **headers: str):
    """A request to the endpoint origin (the app's address)."""
    headers.setdefault("Host", f"{origin().host}:{port}")
    return fetch(port, path, user=user, **headers)


def wait_ready(app: App, cluster, timeout: float = 120.0) -> App:
    def ready():
        job_sync.cluster_sync(cluster)
        fresh = App.objects.select_related("job", "team").prefetch_related("job__tasks").get(pk=app.pk)
        if fresh.job is not None and fresh.job.is_final:
            raise AssertionError(f"the app's run ended: {fresh.job.state} {fresh.job.message}")
        return fresh if fresh.ready else None

    return wait_until(ready, timeout, f"app {app.name} to be healthy", every=0.3)


@pytest.fixture
def wildcard_origin(settings):
    """An endpoint origin with a host per app (public and shared apps need one), for tests without a live server."""
    settings.EASYAI_ENDPOINTS_URL = "http://*.localhost:8001"


@pytest.fixture
def apps_on_origin(origins):
    """The live server as the portal (127.0.0.1) and the endpoint origin (localhost), as the proxy tests use."""
    return origins


@pytest.fixture
def clock(local_cluster):
    """The site's clock for a live test: a sync pass of the local cluster every 0.3 s, in a thread."""
    import threading

    from django.db import connection

    stop = threading.Event()

    def tick() -> None:
        try:
            while not stop.is_set():
                try:
                    job_sync.cluster_sync(local_cluster)
                except Exception:  # a pass that met a row mid-change: the next one sees it settled
                    pass
                stop.wait(0.3)
        finally:
            connection.close()

    thread = threading.Thread(target=tick, name="test-clock", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


CUSTOM_SERVER = '''"""A custom app: serves under $EASYAI_APP_BASE_PATH on $PORT, and shows what its task was given."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = os.environ["EASYAI_APP_BASE_PATH"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.path.startswith(BASE + "/"):
            self.send_error(404)
            return
        rest = self.path[len(BASE):]
        body = json.dumps({"path": rest, "greeting": os.environ.get("GREETING", ""),
                           "secret": os.environ.get("API_KEY", ""), "app_dir": os.environ.get("app_dir", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler).serve_forever()
'''
