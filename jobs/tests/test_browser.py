"""The job page in a real headless browser: a task's log appears live, and a shell tab runs a command."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from clusters.models import Cluster
from jobs import services
from testing.asgi import AsgiServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The fixtures: a real ASGI server, and Debian's chromium for pytest-playwright.

# Numbered lines for a while, then waits until the shell has been used (it ends when the job is stopped).
TALKER = 'for i in $(seq 1 200); do echo "tick $i"; sleep 0.05; done; sleep 60'


@pytest.fixture
def running_job(transactional_db, owner, tmp_path):
    cluster = Cluster.objects.create(name="local", kind="local", is_default=True, settings={"stop_grace": 1})
    job = services.job_submit(
        user=owner,
        data={
            "name": "browser",
            "framework": "batch",
            "command": TALKER,
            "env": {"HOME": str(tmp_path / "home")},  # a shell sources $HOME/.bashrc: not this machine's
            "roles": {"main": {"replicas": 1, "cpu": "250m", "memory": "128Mi"}},
        },
    )
    yield job
    cluster.backend().stop(job.public_id)


def signed_in(page: Page, server: AsgiServer, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server.http_url}])


def test_the_job_page_shows_the_log_live_and_runs_a_shell(page: Page, asgi_server, running_job, owner):
    signed_in(page, asgi_server, owner)
    # The log socket goes through a route the test can cut, as a restarting server or a network change would.
    log_sockets: list[tuple[str, object]] = []

    def relay(route) -> None:
        route.connect_to_server()  # frames pass both ways unchanged
        log_sockets.append((route.url, route))

    page.route_web_socket(re.compile(r".*/log/.*"), relay)
    page.goto(f"{asgi_server.http_url}/jobs/{running_job.public_id}/")

    view = page.locator("#log-pane-main-0 [data-log-view]")
    expect(view).to_contain_text("tick 3", timeout=15_000)
    first = int(re.findall(r"tick (\d+)", view.text_content())[-1])
    time.sleep(0.5)
    expect(view).to_contain_text(f"tick {first + 5}", timeout=10_000)  # lines written after the page loaded
    expect(page.locator("#log-pane-main-0 [data-log-status]")).to_have_attribute("data-state", "live")

    log_sockets[0][1].close(code=1001, reason="going away")  # dropped mid-stream
    expect(page.locator("#log-pane-main-0 [data-log-status]")).to_have_attribute("data-state", "reconnecting")
    dropped_at = int(re.findall(r"tick (\d+)", view.text_content())[-1])
    expect(view).to_contain_text(f"tick {dropped_at + 10}", timeout=15_000)
    assert len(log_sockets) == 2 and re.search(r"\?offset=\d+$", log_sockets[1][0]), log_sockets
    lines = view.text_content().splitlines()
    assert lines == [f"tick {i}" for i in range(1, len(lines) + 1)]  # in order, none twice, none missing

    page.locator("#shell-tab").click()
    status = page.locator("[data-shell-status]")
    expect(status).to_have_attribute("data-state", "connected", timeout=10_000)
    page.locator("[data-shell-terminal] .xterm-helper-textarea").focus()
    page.keyboard.type("echo browser-$((6*7)) in $(basename $PWD)")
    page.keyboard.press("Enter")
    expect(page.locator("[data-shell-terminal] .xterm-rows")).to_contain_text("browser-42 in", timeout=10_000)

    page.keyboard.type("exit 4")
    page.keyboard.press("Enter")
    expect(status).to_have_attribute("data-state", "exited", timeout=10_000)
    expect(status).to_contain_text("4")
