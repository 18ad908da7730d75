"""A real ASGI server for socket and browser tests, and the headless browser's launch settings.

The server is uvicorn in a thread of the test process, serving the project's
ASGI application (pages, API, static files and websockets) on a free port. It
shares the process's settings (each test's storage root) and the file-based
test database, so tests that use it need committed rows (``transactional_db``).

The fixtures (``asgi_server``, ``browser_type_launch_args``) are in ``testing.plugin``: every test has them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


PORTAL_COOKIES = ("sessionid", "csrftoken")  # the portal's own cookies, which no endpoint may see


class AsgiServer:
    """uvicorn in a thread, serving easyai_site.asgi.application (static files too, as runserver does)."""

    def __init__(self) -> None:
        import uvicorn
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from easyai_site.asgi import application

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            ASGIStaticFilesHandler(application),
            lifespan="off",
            ws="websockets-sansio",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="asgi-test-server", daemon=True
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> AsgiServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


def browser_available() -> bool:
    return CHROMIUM.exists() or bool(shutil.which("chromium"))


def launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch arguments: Debian's chromium (playwright cannot download its own here)."""
    if not CHROMIUM.exists():
        if os.environ.get("EASYAI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EASYAI_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
    # Playwright's sync API keeps an event loop in this thread from here to the end of the session, and
    # Django refuses ORM calls from a thread with a running loop; the tests' own ORM calls are plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}


def signed_in(page, server: AsgiServer, user) -> None:
    """Sign the user in on a playwright page: the portal's session cookie, as a login would set it."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server.http_url}])
