"""Apps in a real headless browser, through the proxy on the endpoint origin: a Streamlit app reruns on a
widget change (its websocket through the proxy), a Gradio app answers a click (its queue's requests and
event stream through the proxy), a sleeping app's visitor sees it start and then the app, and a public app
opens for an anonymous visitor.

The test server is the portal as http://127.0.0.1:<port> and the endpoint origin as http://localhost:<port>.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps import schedule, services
from apps.models import AppStatus
from apps.tests.conftest import put_example, wait_ready
from testing.asgi import PORTAL_COOKIES, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _open(page: Page, asgi_server, origins, user, app) -> None:
    """As a team member would: signed in to the portal, the app's URL, signed in there through the portal."""
    signed_in(page, asgi_server, user)
    page.goto(app.url)
    assert page.url.startswith(f"http://{origins.endpoints}/apps/{app.team.slug}/{app.name}/"), page.url
    assert "_easyai_ticket" not in page.url
    seen = page.evaluate("document.cookie")
    assert not any(name in seen for name in (*PORTAL_COOKIES, "easyai_endpoint")), seen


def test_a_streamlit_app_reruns_when_a_widget_changes(page: Page, asgi_server, origins, local_cluster, stop_all, people, team):
    owner, mate = people["owner"], people["mate"]
    folder = put_example(owner, "streamlit-demo", "apps/iris")
    app = services.app_deploy(
        user=owner, team=team, name="iris", kind="streamlit", entry="app.py", source=folder, cpu="1", memory="1Gi"
    )
    app = wait_ready(app, local_cluster)
    _open(page, asgi_server, origins, mate, app)
    prediction = page.get_by_text("Prediction: ")
    expect(prediction).to_have_text("Prediction: setosa", timeout=60_000)
    # Petal length to its maximum with the keyboard: Streamlit sends the change over its websocket, reruns the
    # script, and the new answer comes back the same way.
    slider = page.get_by_role("slider", name="Petal length (cm)")
    slider.focus()
    slider.press("End")
    expect(prediction).to_have_text("Prediction: virginica", timeout=30_000)


def test_a_gradio_app_answers_a_click(page: Page, asgi_server, origins, local_cluster, stop_all, people, team):
    owner = people["owner"]
    folder = put_example(owner, "gradio-demo", "apps/iris-gradio")
    app = services.app_deploy(
        user=owner, team=team, name="iris-gradio", kind="gradio", entry="app.py", source=folder, cpu="1", memory="1Gi"
    )
    app = wait_ready(app, local_cluster)
    _open(page, asgi_server, origins, owner, app)
    page.get_by_label("Petal length (cm)").fill("5.5")
    page.get_by_label("Petal width (cm)").fill("2.1")
    page.get_by_role("button", name="Classify").click()
    expect(page.get_by_label("Result")).to_have_value("Prediction: virginica (built-in rule)", timeout=30_000)


def test_a_sleeping_app_wakes_for_its_visitor_and_a_public_one_opens_for_anyone(
    page: Page, browser, asgi_server, wildcard, local_cluster, stop_all, clock, people, team
):
    # A public app needs a host of its own (its scripts must not share an origin with its visitors' other
    # endpoints): the endpoint origin is a wildcard here, each app at app--{name}--{team}.localhost.
    owner, admin = people["owner"], people["team_admin"]
    folder = put_example(owner, "streamlit-demo", "apps/iris")
    app = services.app_deploy(
        user=owner, team=team, name="iris", kind="streamlit", entry="app.py", source=folder, cpu="1", memory="1Gi",
        idle_minutes=1,
    )  # fmt: skip

    def ready():
        from apps.models import App

        fresh = App.objects.select_related("job", "team").prefetch_related("job__tasks").get(pk=app.pk)
        return fresh if fresh.ready else None

    from testing.wait import wait_until

    app = wait_until(ready, 120, "the app to be up", every=0.3)
    schedule.scan(now=timezone.now() + timedelta(minutes=2))
    app.refresh_from_db()
    assert app.status == AppStatus.SLEEPING

    # The visitor sees the starting page, which turns into the app by itself.
    signed_in(page, asgi_server, owner)
    assert app.url.startswith(f"http://app--iris--{team.slug}.localhost:")
    page.goto(app.url)
    expect(page.locator("#easyai-app-starting")).to_be_visible()
    expect(page.get_by_text("Prediction: setosa")).to_be_visible(timeout=120_000)
    app.refresh_from_db()
    assert app.status == AppStatus.ACTIVE and app.startup_seconds is not None

    # Public: a browser that never signed in anywhere opens it; a team app it could not.
    anonymous = browser.new_context()
    try:
        stranger = anonymous.new_page()
        stranger.goto(app.url)
        assert "/login" in stranger.url or "/accounts/" in stranger.url, stranger.url  # sent to sign in
        services.app_update(user=admin, app=app, visibility="public")
        stranger.goto(app.url)
        expect(stranger.get_by_text("Prediction: setosa")).to_be_visible(timeout=60_000)
    finally:
        anonymous.close()
