"""Endpoints in a real headless browser: a page a task serves, opened by the team admin, can neither read nor
use the portal's cookies; under a wildcard it opens at a host of its own.

The test server is the portal as http://127.0.0.1:<port> and the endpoint origin as http://localhost:<port>
(told apart by host name, as in production two names of one server are).
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from jobs.models import Job
from teams.models import Membership
from testing.asgi import PORTAL_COOKIES, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
    origins,
    web_job: Job,
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
    # (SameSite) and one that forges its way in is refused by the proxy (test_origin.py).


def test_under_a_wildcard_the_link_opens_the_endpoint_at_a_host_of_its_own(
    page: Page,
    asgi_server,
    wildcard,
    web_job: Job,
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
