"""A stranger on the embedded defaults, tried as an attacker: no account, no team, no task.

Sign-up is off unless EASYAI_SIGNUP_ENABLED; turned on, new accounts wait for a platform admin's
approval unless EASYAI_SIGNUP_APPROVAL=0; and even an approved newcomer cannot create a team (the only
way to submit work uninvited) unless EASYAI_TEAM_CREATORS=everyone. Debug pages, when an operator does
turn debug on, show no password of any connection string.
"""

from __future__ import annotations

import secrets
import sys
from urllib.parse import urlparse

import pytest
from django.conf import settings as live_settings
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter, technical_500_response
from rest_framework.test import APIClient

from jobs.models import Job
from teams.models import Membership, Team

NEWBIE = {"username": "newbie", "email": "newbie@example.com", "password1": "Long-enough-42", "password2": "Long-enough-42"}
SPEC = {
    "name": "takeover",
    "team": "vision",
    "framework": "batch",
    "command": "cat /etc/passwd",
    "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
}


def _token(username: str, password: str) -> APIClient | None:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    if response.status_code != 200:
        return None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def _reaches_a_task(client: APIClient, page: Client) -> bool:
    """Tries every way in: create a team on the page and the API, then submit a job to any team."""
    page.post("/teams/new/", {"name": "Mine", "slug": "mine"})
    client.post("/api/v1/teams/", {"name": "Mine", "slug": "mine"}, format="json")
    for team in ("mine", "vision", "default"):
        client.post("/api/v1/jobs/", {**SPEC, "team": team}, format="json")
    return Job.objects.exists() or Team.objects.filter(slug="mine").exists()


def test_the_shipped_defaults_are_the_safe_ones():
    assert live_settings.EASYAI_SIGNUP_ENABLED is False
    assert live_settings.EASYAI_SIGNUP_APPROVAL is True
    assert live_settings.EASYAI_TEAM_CREATORS == "staff"
    assert live_settings.DEFAULT_EXCEPTION_REPORTER_FILTER == "easyai_site.reporting.ConnectionStringSafeFilter"


def test_anonymous_sign_up_is_refused_by_default(people, fake_backend):
    client = Client()
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", NEWBIE).status_code == 404
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert APIClient().post("/api/v1/jobs/", SPEC, format="json").status_code == 401
    assert not Job.objects.exists()


def test_with_sign_up_on_a_newcomer_cannot_create_a_team_and_so_cannot_reach_a_task(people, fake_backend, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    settings.EASYAI_SIGNUP_APPROVAL = False
    page = Client()
    assert page.post("/accounts/signup/", NEWBIE).status_code == 302
    newbie = get_user_model().objects.get(username="newbie")
    assert newbie.is_active and not newbie.is_staff
    assert page.get("/teams/new/").status_code == 403
    assert page.post("/teams/new/", {"name": "Mine", "slug": "mine"}).status_code == 403
    api = _token("newbie", NEWBIE["password1"])
    assert api.post("/api/v1/teams/", {"name": "Mine", "slug": "mine"}, format="json").status_code == 403
    assert api.post("/api/v1/jobs/", SPEC, format="json").status_code in (400, 403, 404)

    assert not _reaches_a_task(api, page)
    assert not Membership.objects.filter(user=newbie).exists()


def test_with_approval_a_newcomer_cannot_sign_in_until_a_platform_admin_approves(people, fake_backend, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    response = Client().post("/accounts/signup/", NEWBIE, follow=True)
    assert "must approve" in response.content.decode()
    newbie = get_user_model().objects.get(username="newbie")
    assert not newbie.is_active
    assert Client().post("/accounts/login/", {"username": "newbie", "password": NEWBIE["password1"]}).status_code == 200
    assert _token("newbie", NEWBIE["password1"]) is None

    # A team admin is no platform admin: the admin is closed to them.
    team_admin = Client()
    team_admin.force_login(people["team_admin"])
    action = {"action": "approve", "_selected_action": [newbie.pk]}
    assert team_admin.post("/admin/auth/user/", action).status_code == 302  # to the admin's sign-in
    newbie.refresh_from_db()
    assert not newbie.is_active

    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("root", "", "x-long-pass-1"))
    assert operator.post("/admin/auth/user/", action).status_code == 302
    newbie.refresh_from_db()
    assert newbie.is_active
    assert _token("newbie", NEWBIE["password1"]) is not None


def test_the_admin_asks_the_same_rule_to_create_a_team(people, settings):
    staff = people["staff"]
    staff.is_superuser = True
    staff.save()
    operator = Client()
    operator.force_login(staff)
    response = operator.post(
        "/admin/teams/team/add/",
        {
            "name": "Audio",
            "slug": "audio",
            "notebook_max_lease_hours": "72",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "quotas-TOTAL_FORMS": "0",
            "quotas-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    team = Team.objects.get(slug="audio")
    assert not Membership.objects.filter(team=team).exists()  # the operator does not join it


@pytest.fixture
def connection_strings(settings, monkeypatch) -> _Held:
    """Connection strings with passwords made at run time (so no source line shown on the page holds one)."""
    passwords = {name: f"{name}-{secrets.token_hex(6)}" for name in ("db", "redis", "amqp")}
    urls = {
        "db": f"mysql://easyai:{passwords['db']}@db:3306/easyai",
        "redis": f"redis://:{passwords['redis']}@cache:6379/0",
        "amqp": f"amqp://guest:{passwords['amqp']}@mq:5672//",
    }
    settings.DATABASE_URL = urls["db"]
    settings.REDIS_URL = urls["redis"]
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [urls["redis"]]}}
    }
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": urls["redis"]}
    settings.EASYAI_EXTRA_BROKER = urls["amqp"]
    settings.DEBUG = True
    monkeypatch.setenv("DATABASE_URL", urls["db"])  # the environment shows under runserver's request.META
    return _Held(passwords=list(passwords.values()), **urls)


class _Held:
    """The test's own copy of the secrets: a local of the failing frame that must not put them on the page."""

    def __init__(self, **values) -> None:
        self._values = values

    def __getitem__(self, name: str):
        return self._values[name]

    def __repr__(self) -> str:
        return "<the test's secrets>"


def test_the_debug_page_shows_no_password(connection_strings):
    request = RequestFactory().get("/boom/", HTTP_X_CACHE=connection_strings["redis"])
    broker_url = connection_strings["amqp"]  # a local variable of the failing frame
    parsed = urlparse(connection_strings["db"])  # and an object whose repr holds one
    try:
        raise RuntimeError(f"cannot reach {broker_url}")  # a message quoting the URL
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    text = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "DATABASE_URL" in page and "REDIS_URL" in page and "broker_url" in page and "parsed" in page
    assert "mysql://easyai:" in page and "@db:3306/easyai" in page  # the rest of the URL is still shown
    for password in connection_strings["passwords"]:
        assert password not in page, password
        assert password not in text, password
    assert parsed.password in connection_strings["passwords"]


def test_a_500_through_the_site_with_debug_on_shows_no_password(connection_strings, monkeypatch):
    import teams.views

    def explode(request):
        raise RuntimeError("boom")

    monkeypatch.setattr(teams.views.SignInView, "get", lambda self, request, *args, **kwargs: explode(request))
    client = Client(raise_request_exception=False)
    response = client.get("/accounts/login/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "REDIS_URL" in page
    for password in connection_strings["passwords"]:
        assert password not in page, password
