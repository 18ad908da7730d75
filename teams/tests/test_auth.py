"""Token and session authentication, CSRF, token exchange and its throttle, sign-up, profile token."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from conftest import PASSWORD
from teams import services
from teams.models import ApiToken, Membership
from teams.tokens import user_for_key


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


def test_session_write_with_csrf_token_is_accepted(people, anyone_creates_teams):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["mate"])
    client.get("/accounts/profile/")  # the page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/v1/teams/", {"name": "Audio", "slug": "audio"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201


def test_token_write_needs_no_csrf_token(people, anyone_creates_teams):
    _token, key = services.token_create(user=people["mate"])
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
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


def test_token_exchange_returns_a_new_token_of_the_user(people):
    response = APIClient().post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    key = response.json()["token"]
    token = ApiToken.objects.get(user=people["mate"])
    assert response.json()["prefix"] == token.prefix and key.startswith(token.prefix)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/me/").json()["username"] == "mate"


def test_each_token_exchange_makes_a_token_of_its_own_and_both_work(people):
    body = {"username": "mate", "password": PASSWORD}
    first = APIClient().post("/api/v1/auth/token/", body, format="json").json()["token"]
    second = APIClient().post("/api/v1/auth/token/", body, format="json").json()["token"]
    assert first != second
    assert user_for_key(first) == user_for_key(second) == people["mate"]
    assert ApiToken.objects.filter(user=people["mate"]).count() == 2


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
    assert not ApiToken.objects.exists()


def test_token_exchange_refuses_inactive_users(people):
    get_user_model().objects.filter(username="mate").update(is_active=False)
    response = APIClient().post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 400


def test_token_exchange_is_throttled(people):
    # settings: EASYAI_SIGNIN_THROTTLE = 10/min
    client = APIClient()
    codes = [
        client.post("/api/v1/auth/token/", {"username": "mate", "password": f"guess-{i}"}, format="json").status_code
        for i in range(10)
    ]
    assert codes == [400] * 10
    response = client.post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert not ApiToken.objects.exists()


def test_token_exchange_ignores_a_stale_token_header(people):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token stale")
    response = client.post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    assert response.status_code == 200


# --- profile and token -------------------------------------------------------------------


def test_profile_lists_tokens_by_prefix_never_by_key(people, page):
    token, key = services.token_create(user=people["mate"], name="laptop")
    content = page(people["mate"]).get("/accounts/profile/").content.decode()
    assert token.prefix in content and "laptop" in content
    assert key not in content


def test_profile_shows_a_new_key_once_and_revoking_stops_it(people, page):
    client = page(people["mate"])
    response = client.post("/accounts/profile/token/", {"name": "ci", "expires_in_days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=people["mate"])
    key = response.context["new_key"]
    assert key in response.content.decode() and key.startswith(token.prefix)
    assert token.name == "ci" and token.expires_at is not None
    assert key not in client.get("/accounts/profile/").content.decode()  # once
    working = APIClient()
    working.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert working.get("/api/v1/me/").status_code == 200
    assert client.post(f"/accounts/profile/tokens/{token.pk}/revoke/").status_code == 302
    assert working.get("/api/v1/me/").status_code == 401


def test_profile_refuses_a_bad_expiry_at_the_field(people, page):
    response = page(people["mate"]).post("/accounts/profile/token/", {"expires_in_days": "0"})
    assert response.status_code == 400
    assert 'id="id_expires_in_days_error"' in response.content.decode()
    assert not ApiToken.objects.exists()


def test_profile_token_create_needs_post(people, page):
    assert page(people["mate"]).get("/accounts/profile/token/").status_code == 405


# --- sign-up, sign-in, sign-out --------------------------------------------------------


SIGNUP = {"username": "newbie", "email": "newbie@example.com", "password1": "Long-enough-42", "password2": "Long-enough-42"}


def test_signup_creates_an_account_and_signs_in(db, settings, anyone_creates_teams):
    settings.EASYAI_SIGNUP_ENABLED = True
    settings.EASYAI_SIGNUP_APPROVAL = False
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
