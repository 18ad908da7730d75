"""Password guessing on every sign-in path, tried as an attacker who rotates X-Forwarded-For.

The throttle keys on the real peer address (the header is believed only from EASYAI_TRUSTED_PROXIES)
and, separately, on the user name. Ten attempts a minute each (EASYAI_SIGNIN_THROTTLE = 10/min).
"""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from conftest import PASSWORD
from teams.models import ApiToken
from teams.signin import client_address

LIMIT = 10


def _api(client: Client, username: str, password: str, **meta):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, content_type="application/json", **meta
    )


def _accounts(client: Client, username: str, password: str, **meta):
    return client.post("/accounts/login/", {"username": username, "password": password}, **meta)


def _admin(client: Client, username: str, password: str, **meta):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}, **meta)


PATHS = {"api": _api, "accounts": _accounts, "admin": _admin}


def _refused(path: str, response) -> bool:
    if response.status_code != 429 or int(response["Retry-After"]) < 1:
        return False
    return path == "api" or "Too many sign-in attempts" in response.content.decode()


def _signed_in(path: str, response) -> bool:
    if path == "api":
        return response.status_code == 200 and "token" in response.json()
    return response.status_code == 302


@pytest.mark.parametrize("path", PATHS)
def test_rotating_x_forwarded_for_does_not_lift_the_throttle(people, path):
    attempt = PATHS[path]
    client = Client()
    for i in range(LIMIT):
        # A different user name each time too, so only the address can count them.
        response = attempt(client, f"guess-{i}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert not _refused(path, response), i
    response = attempt(client, "staff", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.250")
    assert _refused(path, response)
    assert not _signed_in(path, response)  # even the right password waits
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("path", PATHS)
def test_guessing_one_users_password_from_many_addresses_is_throttled_per_user_name(people, path):
    attempt = PATHS[path]
    for i in range(LIMIT):
        response = attempt(Client(REMOTE_ADDR=f"192.0.2.{i}"), "Staff" if i % 2 else "staff", f"guess-{i}")
        assert not _refused(path, response), i
    response = attempt(Client(REMOTE_ADDR="192.0.2.200"), "staff", PASSWORD)
    assert _refused(path, response)
    assert not _signed_in(path, response)
    # Another user from another address is not held up by it.
    assert not _refused(path, attempt(Client(REMOTE_ADDR="192.0.2.201"), "mate", PASSWORD))


def test_the_api_answers_429_with_retry_after(people):
    client = Client()
    for i in range(LIMIT):
        _api(client, f"guess-{i}", "wrong")
    response = _api(client, "mate", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"].lower()


def test_the_sign_in_page_says_when_to_try_again(people):
    client = Client()
    for i in range(LIMIT):
        assert _accounts(client, f"guess-{i}", "wrong").status_code == 200
    response = _accounts(client, "mate", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    content = response.content.decode()
    assert "Too many sign-in attempts. Try again in" in content and "alert-danger" in content
    assert "_auth_user_id" not in client.session


def test_a_trusted_proxys_header_is_honoured(people, settings):
    settings.EASYAI_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = Client(REMOTE_ADDR="10.1.2.3")
    # Many clients behind the proxy, one attempt each: none is held up by the others.
    for i in range(LIMIT * 2):
        response = _api(proxy, f"user-{i}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        assert response.status_code == 400, i
    assert _api(proxy, "mate", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 200


def test_behind_a_trusted_proxy_a_client_cannot_rotate_the_part_it_writes(people, settings):
    settings.EASYAI_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = Client(REMOTE_ADDR="10.1.2.3")
    # The proxy appends the real client (203.0.113.7); what the client wrote itself stands to the left.
    for i in range(LIMIT):
        forwarded = f"198.51.100.{i}, 203.0.113.7"
        assert _accounts(proxy, f"guess-{i}", "wrong", HTTP_X_FORWARDED_FOR=forwarded).status_code == 200
    assert _accounts(proxy, "mate", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.77, 203.0.113.7").status_code == 429


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "1.2.3.4", [], "203.0.113.5"),  # no proxies configured: the header is ignored
        ("203.0.113.5", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.5"),  # not from a trusted proxy: ignored
        ("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),  # the client's own entry is not believed
        ("10.0.0.2", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # two proxies
        ("10.0.0.2", "not-an-address", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),
        ("::ffff:10.0.0.2", "2001:db8::1", ["10.0.0.0/8"], "2001:db8::1"),
    ],
)
def test_client_address(settings, peer, forwarded, trusted, expected):
    settings.EASYAI_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected
