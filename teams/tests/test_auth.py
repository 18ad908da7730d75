"""Token and session authentication, CSRF, token exchange and its throttle, sign-up, profile token."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import PASSWORD
from teams.models import Membership


def test_token_authentication_works(people, api):
    response = api(people["mate"]).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "mate"


def test_a_wrong_token_is_refused(people):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/me/").status_code == 401


def test_session_authentication_works(people):
    client = APIClient()
    assert client.login(username="mate", password=PASSWORD)
    response = client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "mate"


def test_session_write_without_csrf_token_is_refused(people):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["mate"])
    response = client.post("/api/v1/teams/", {"name": "Audio", "slug": "audio"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Membership.objects.filter(team__slug="audio").exists()


def test_session_write_with_csrf_token_is_accepted(people):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["mate"])
    client.get("/accounts/profile/")  # the page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/v1/teams/", {"name": "Audio", "slug": "audio"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201


def test_token_write_needs_no_csrf_token(people):
    token = Token.objects.create(user=people["mate"])
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/v1/teams/", {"name": "Audio", "slug": "audio"}, format="json").status_code == 201


def test_page_form_without_csrf_token_is_refused(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["team_admin"])
    response = client.post("/teams/vision/members/mate/role/", {"role": "admin"})
    assert response.status_code == 403
    assert Membership.objects.get(user=people["mate"]).role == "member"


def test_me_lists_teams_with_roles_and_current_team(people, api, other_team):
    Membership.objects.create(team=other_team, user=people["mate"], role=Membership.Role.ADMIN)
    data = api(people["mate"]).get("/api/v1/me/").json()
    assert data["teams"] == [
        {"slug": "speech", "name": "Speech", "role": "admin"},
        {"slug": "vision", "name": "Vision", "role": "member"},
    ]
    assert data["current_team"] == "speech"
    assert data["is_staff"] is False


def test_me_follows_the_team_picked_in_the_header(people, api, page):
    mate = people["mate"]
    assert page(mate).post("/teams/switch/", {"team": "vision", "next": "/"}).status_code == 302
    assert api(mate).get("/api/v1/me/").json()["current_team"] == "vision"


# --- token exchange ---------------------------------------------------------------------


def test_token_exchange_returns_the_users_token(people):
    response = APIClient().post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    assert key == Token.objects.get(user=people["mate"]).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/me/").json()["username"] == "mate"


def test_token_exchange_gives_the_same_token_twice(people):
    body = {"username": "mate", "password": PASSWORD}
    first = APIClient().post("/api/v1/auth/token/", body, format="json").json()["token"]
    second = APIClient().post("/api/v1/auth/token/", body, format="json").json()["token"]
    assert first == second


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "mate", "password": "wrong"}, "non_field_errors"),
        ({"username": "nobody", "password": PASSWORD}, "non_field_errors"),
        ({"username": "mate"}, "password"),
        ({"password": PASSWORD}, "username"),
    ],
)
def test_token_exchange_refuses_bad_credentials(people, body, field):
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Token.objects.exists()


def test_token_exchange_refuses_inactive_users(people):
    get_user_model().objects.filter(username="mate").update(is_active=False)
    response = APIClient().post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 400


def test_token_exchange_is_throttled(people):
    # settings: DEFAULT_THROTTLE_RATES["auth_token"] = 10/min
    client = APIClient()
    codes = [
        client.post("/api/v1/auth/token/", {"username": "mate", "password": f"guess-{i}"}, format="json").status_code
        for i in range(10)
    ]
    assert codes == [400] * 10
    response = client.post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert not Token.objects.exists()


def test_token_exchange_ignores_a_stale_token_header(people):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token stale")
    response = client.post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 200


# --- profile and token -------------------------------------------------------------------


def test_profile_shows_the_token(people, page):
    token = Token.objects.create(user=people["mate"])
    assert token.key in page(people["mate"]).get("/accounts/profile/").content.decode()


def test_profile_token_regenerate_changes_the_key(people, page):
    old = Token.objects.create(user=people["mate"]).key
    client = page(people["mate"])
    response = client.post("/accounts/profile/token/")
    assert response.status_code == 302
    new = Token.objects.get(user=people["mate"]).key
    assert new != old
    assert new in client.get("/accounts/profile/").content.decode()
    stale = APIClient()
    stale.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert stale.get("/api/v1/me/").status_code == 401


def test_profile_token_regenerate_needs_post(people, page):
    assert page(people["mate"]).get("/accounts/profile/token/").status_code == 405


# --- sign-up, sign-in, sign-out --------------------------------------------------------


SIGNUP = {"username": "newbie", "email": "newbie@example.com", "password1": "Long-enough-42", "password2": "Long-enough-42"}


def test_signup_creates_an_account_and_signs_in(db, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    client = Client()
    response = client.post("/accounts/signup/", SIGNUP)
    assert response.status_code == 302
    assert get_user_model().objects.get(username="newbie").email == "newbie@example.com"
    home = client.get("/")
    assert home.status_code == 200
    assert "/teams/new/" in home.content.decode()


def test_signup_refuses_a_taken_username(people, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    response = Client().post("/accounts/signup/", {**SIGNUP, "username": "mate"})
    assert response.status_code == 400
    assert 'id="id_username_error"' in response.content.decode()
    assert get_user_model().objects.filter(username="mate").count() == 1


def test_signup_refuses_a_weak_password(db, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    response = Client().post("/accounts/signup/", {**SIGNUP, "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="newbie").exists()


def test_signup_off_answers_404(db, settings):
    settings.EASYAI_SIGNUP_ENABLED = False
    client = Client()
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", SIGNUP).status_code == 404
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert "/accounts/signup/" not in client.get("/accounts/login/").content.decode()


def test_login_page_links_signup_when_enabled(db, settings):
    settings.EASYAI_SIGNUP_ENABLED = True
    assert "/accounts/signup/" in Client().get("/accounts/login/").content.decode()


def test_sign_in_and_out_with_the_session_cookie(people, settings):
    client = Client()
    response = client.post("/accounts/login/", {"username": "mate", "password": PASSWORD})
    assert response.status_code == 302
    assert settings.SESSION_COOKIE_NAME in response.cookies
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_sign_in_with_a_wrong_password_shows_an_error(people):
    response = Client().post("/accounts/login/", {"username": "mate", "password": "wrong"})
    assert response.status_code == 200
    assert "alert-danger" in response.content.decode()


@pytest.mark.parametrize("username", ["public", "data"])
def test_signup_refuses_a_username_that_names_a_shared_folder(db, settings, username):
    settings.EASYAI_SIGNUP_ENABLED = True
    response = Client().post("/accounts/signup/", {**SIGNUP, "username": username})
    assert response.status_code == 400
    assert "reserved" in response.content.decode()
    assert not get_user_model().objects.filter(username=username).exists()
