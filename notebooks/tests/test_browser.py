"""Endpoints in a real headless browser: JupyterLab opened from its page loads on the endpoint origin, and a
page a task serves, opened by the team admin, can neither read nor use the portal's cookies.

The test server is the portal as http://127.0.0.1:<port> and the endpoint origin as http://localhost:<port>
(told apart by host name, as in production two names of one server are).
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, expect

from jobs.models import Job
from jobs.tests import browser_support
from notebooks import services
from notebooks.tests.conftest import wait_running
from notebooks.tests.test_endpoint_origin import origins, wildcard  # noqa: F401 - the fixtures
from notebooks.tests.test_endpoints import web_job  # noqa: F401 - the fixture
from teams.models import Membership

pytestmark = [pytest.mark.browser, pytest.mark.slow]

asgi_server = browser_support.asgi_server
browser_type_launch_args = browser_support.browser_type_launch_args

PORTAL_COOKIES = ("sessionid", "csrftoken")


def signed_in(page: Page, server: browser_support.AsgiServer, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server.http_url}])


def test_opening_a_notebook_from_its_page_loads_jupyterlab(
    page: Page,
    asgi_server,
    origins,  # noqa: F811 - the fixture
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


ATTACK = """async ({portal, slug, victim}) => {
  const out = {};
  try {  // the portal's API: JSON needs a CORS preflight the portal never grants
    const r = await fetch(`${portal}/api/v1/teams/${slug}/members/${victim}/`, {method: "PATCH",
      credentials: "include", headers: {"Content-Type": "application/json"}, body: JSON.stringify({role: "admin"})});
    out.api = "answered " + r.status;
  } catch (e) { out.api = "blocked"; }
  try {  // the portal's page form: a simple request goes out, but the portal's cookies stay at home (SameSite)
    await fetch(`${portal}/teams/${slug}/members/${victim}/role/`, {method: "POST", mode: "no-cors",
      credentials: "include", body: new URLSearchParams({role: "admin"})});
    out.form = "sent";
  } catch (e) { out.form = "blocked"; }
  try {  // reading the portal as the admin
    const r = await fetch(`${portal}/api/v1/me/`, {credentials: "include"});
    out.read = "read " + (await r.text());
  } catch (e) { out.read = "blocked"; }
  return out;
}"""


def test_a_page_a_task_serves_cannot_read_or_use_the_portals_cookies_when_the_team_admin_opens_it(
    page: Page,
    asgi_server,
    origins,  # noqa: F811 - the fixture
    web_job: Job,  # noqa: F811 - the fixture
    people,
    team,
):
    admin, author = people["team_admin"], people["owner"]
    signed_in(page, asgi_server, admin)
    response = page.goto(f"{asgi_server.http_url}/jobs/{web_job.public_id}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The portal's own page holds a CSRF cookie its scripts may read: the prize an endpoint page is after.
    assert "csrftoken=" in page.evaluate("document.cookie")

    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    link = page.locator("#job-endpoints a")
    expect(link).to_have_attribute("href", f"http://{origins.endpoints}{base}")  # the endpoint origin's URL
    with page.context.expect_page() as opened:
        link.click()
    task_page = opened.value
    task_page.wait_for_load_state()
    assert task_page.url == f"http://{origins.endpoints}{base}"  # signed in there through the portal: the ticket spent

    # The task's own page and script, as its author wrote them, run on the endpoint origin.
    task_page.goto(f"http://{origins.endpoints}{base}page")
    expect(task_page.locator("#cookies")).to_have_text("cookies:")  # nothing: no portal cookie, no HttpOnly one
    seen = task_page.evaluate("document.cookie")
    assert not any(name in seen for name in (*PORTAL_COOKIES, "easyai_endpoint")), seen

    result = task_page.evaluate(ATTACK, {"portal": asgi_server.http_url, "slug": team.slug, "victim": author.username})
    assert result["api"] == "blocked" and result["read"] == "blocked", result
    time.sleep(0.5)  # the no-cors form post has been answered by now
    assert Membership.objects.get(team=team, user=author).role == Membership.Role.MEMBER
    # And the same page cannot post to its own endpoint from elsewhere: a cross-site POST carries no cookie
    # (SameSite) and one that forges its way in is refused by the proxy (test_endpoint_origin.py).


def test_under_a_wildcard_the_link_opens_the_endpoint_at_a_host_of_its_own(
    page: Page,
    asgi_server,
    wildcard,  # noqa: F811 - the fixture
    web_job: Job,  # noqa: F811 - the fixture
    people,
):
    signed_in(page, asgi_server, people["team_admin"])
    page.goto(f"{asgi_server.http_url}/jobs/{web_job.public_id}/")
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    own = f"http://{web_job.public_id}--main-0--web.localhost:{asgi_server.port}"
    with page.context.expect_page() as opened:
        page.locator(f'a[href="{own}{base}"]').click()
    task_page = opened.value
    task_page.wait_for_load_state()
    assert task_page.url == own + base
    task_page.goto(own + base + "page")
    expect(task_page.locator("#cookies")).to_have_text("cookies:")
    # Its cookie is its host's: the same path on the bare domain or another endpoint's host is not signed in.
    cookies = task_page.context.cookies()
    assert [c["domain"] for c in cookies if c["name"] == "easyai_endpoint"] == [
        f"{web_job.public_id}--main-0--web.localhost"
    ]


PORTAL_PAGES = ["home", "job-list", "job-submit", "experiment-list", "notebook-list", "tensorboard-list",
                "file-browser", "team-list", "profile", "api-docs", "admin:index"]  # fmt: skip


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
