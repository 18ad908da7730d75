"""A notebook opened from its page in a real headless browser: JupyterLab loads through the endpoint proxy."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from jobs.tests import browser_support
from notebooks import services
from notebooks.tests.conftest import wait_running

pytestmark = [pytest.mark.browser, pytest.mark.slow]

asgi_server = browser_support.asgi_server
browser_type_launch_args = browser_support.browser_type_launch_args


def signed_in(page: Page, server: browser_support.AsgiServer, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server.http_url}])


def test_opening_a_notebook_from_its_page_loads_jupyterlab(
    page: Page, asgi_server, local_cluster, stop_all, owner, team
):
    notebook = services.notebook_create(user=owner, team=team, name="browser", cpu="1", memory="1Gi")
    wait_running(notebook, local_cluster)
    signed_in(page, asgi_server, owner)
    page.goto(f"{asgi_server.http_url}/notebooks/")
    row = page.locator(f"#notebook-{notebook.pk}")
    expect(row.locator(".notebook-state")).to_have_text("running")
    with page.context.expect_page() as opened:
        row.locator("a.notebook-open").click()
    lab = opened.value
    # JupyterLab's shell: its main dock panel and the launcher, rendered by its own scripts through the proxy.
    expect(lab.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    expect(lab.locator(".jp-Launcher")).to_be_visible(timeout=60_000)
    assert lab.url.startswith(f"{asgi_server.http_url}/endpoints/{notebook.job.public_id}/notebook-0/jupyter/lab")
