"""In a real headless browser: JupyterLab opened from its page loads on the endpoint origin (a task's page
and the portal's cookies: endpoints/tests/test_browser.py), and every portal page runs under its CSP.

The test server is the portal as http://127.0.0.1:<port> and the endpoint origin as http://localhost:<port>
(told apart by host name, as in production two names of one server are).
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from notebooks import services
from notebooks.tests.conftest import wait_running
from testing.asgi import PORTAL_COOKIES, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_opening_a_notebook_from_its_page_loads_jupyterlab(
    page: Page,
    asgi_server,
    origins,
    local_cluster,
    stop_all,
    owner,
    team,
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
    # On the endpoint origin, signed in there by a ticket: the URL is clean, the portal's cookies out of reach.
    assert lab.url.startswith(f"http://{origins.endpoints}/endpoints/{notebook.job.public_id}/notebook-0/jupyter/lab")
    assert "_easyai_ticket" not in lab.url
    seen = lab.evaluate("document.cookie")
    assert not any(name in seen for name in (*PORTAL_COOKIES, "easyai_endpoint")), seen


PORTAL_PAGES = ["home", "job-list", "job-submit", "experiment-list", "notebook-list", "tensorboard-list",
                "file-browser", "team-list", "profile", "api-docs", "admin:index", "app-list", "app-create"]  # fmt: skip


def test_the_portals_pages_run_under_their_content_security_policy(page: Page, asgi_server, people, team):
    admin = people["team_admin"]
    admin.is_staff = admin.is_superuser = True  # the admin's pages too
    admin.save()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("pageerror", lambda error: violations.append(str(error)))
    signed_in(page, asgi_server, admin)
    for name in PORTAL_PAGES:
        response = page.goto(f"{asgi_server.http_url}{reverse(name)}")
        assert response.status == 200, name
        assert "script-src 'self'" in response.headers["content-security-policy"], name
        page.wait_for_load_state("networkidle")
    assert violations == []
    # The swagger page built itself from the portal's own scripts; and an injected inline script does not run.
    page.goto(f"{asgi_server.http_url}{reverse('api-docs')}")
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=15_000)
    injected = "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';" \
               " document.body.appendChild(s); return window.__ran || 0; }"  # fmt: skip
    assert page.evaluate(injected) == 0
    assert any("Content Security Policy" in text for text in violations)  # the refusal, as the browser reports it
