"""`easyai login --sso` end to end: the real CLI process listens on loopback and "opens the browser" (BROWSER
records the address), headless Chromium plays the person (the portal's sign-in, the provider's password form,
Allow), and the CLI gets a token that works. Then the one-time code's rules, each able to refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts import services
from accounts.models import CliGrant
from testing.wait import wait_until

EASYAI = Path(sys.executable).parent / "easyai"


def _browser_recorder(folder: Path) -> tuple[str, Path]:
    recorded = folder / "opened-url"
    script = folder / "record-url"
    script.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {recorded}\n")
    script.chmod(0o755)
    return f"{script} %s", recorded


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_easyai_login_sso_gets_a_token_through_the_browser(page: Page, asgi_server, oidc_site, tmp_path):
    browser, recorded = _browser_recorder(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    env.update(EASYAI_CONFIG_DIR=str(tmp_path / "config"), BROWSER=browser, DISPLAY="")
    cli = subprocess.Popen(
        [str(EASYAI), "login", "--url", asgi_server.http_url, "--sso"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: recorded.exists() and recorded.read_text(), timeout=30, what="the CLI opening the page")
        address = recorded.read_text()
        assert address.startswith(f"{asgi_server.http_url}/accounts/cli/authorize/?port=")
        page.goto(address)
        # Not signed in yet: the portal's sign-in page, then the provider's.
        page.get_by_role("link", name="Sign in with Test SSO").click()
        page.get_by_label("Login").fill("olivia")
        page.get_by_label("Password").fill("olivia-pw")
        page.get_by_role("button", name="Sign in to the provider").click()
        expect(page.get_by_text("asks for an API token that acts as you")).to_be_visible()
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
        output, _ = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, output
    assert f"Logged in to {asgi_server.http_url} as olivia" in output
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {config['token']}")
    assert me.status_code == 200 and me.json()["username"] == "olivia"
    assert config["username"] == "olivia"


# --- the one-time code's rules -------------------------------------------------------------------------

VERIFIER = "v" * 43
CHALLENGE = services.challenge_of(VERIFIER)


def _exchange(code: str, verifier: str = VERIFIER):
    return Client().post(
        "/api/v1/auth/cli-token/", {"code": code, "code_verifier": verifier}, content_type="application/json"
    )


@pytest.mark.django_db
def test_a_code_and_its_verifier_get_a_token_once(make_user):
    alice = make_user("alice")
    code = services.cli_grant_create(user=alice, challenge=CHALLENGE, name="laptop")
    answer = _exchange(code)
    assert answer.status_code == 200
    assert answer.json()["username"] == "alice"
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {answer.json()['token']}")
    assert me.json()["username"] == "alice"
    again = _exchange(code)
    assert again.status_code == 400 and "code" in again.json()


@pytest.mark.django_db
def test_a_wrong_verifier_is_refused_and_uses_the_code_up(make_user):
    code = services.cli_grant_create(user=make_user("alice"), challenge=CHALLENGE)
    answer = _exchange(code, verifier="w" * 43)
    assert answer.status_code == 400 and "code_verifier" in answer.json()
    assert _exchange(code).status_code == 400  # a thief's guess burnt it: the real CLI asks again


@pytest.mark.django_db
def test_an_expired_code_is_refused(make_user):
    code = services.cli_grant_create(user=make_user("alice"), challenge=CHALLENGE)
    CliGrant.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _exchange(code).status_code == 400


@pytest.mark.django_db
def test_bad_exchange_input_names_the_field(make_user):
    answer = Client().post("/api/v1/auth/cli-token/", {"code": "x"}, content_type="application/json")
    assert answer.status_code == 400 and "code_verifier" in answer.json()
    answer = Client().post("/api/v1/auth/cli-token/", "[]", content_type="application/json")
    assert answer.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("port=80&state=abcdefghijklmnop&code_challenge=" + CHALLENGE, "port"),
        ("port=x&state=abcdefghijklmnop&code_challenge=" + CHALLENGE, "port"),
        ("port=5000&state=short&code_challenge=" + CHALLENGE, "state"),
        ("port=5000&state=abcdefghijklmnop&code_challenge=short", "code_challenge"),
        (
            "port=5000&state=abcdefghijklmnop&code_challenge_method=plain&code_challenge=" + CHALLENGE,
            "code_challenge_method",
        ),
    ],
)
def test_the_cli_page_refuses_bad_parameters_naming_the_field(make_user, query, field):
    client = Client()
    client.force_login(make_user("alice"))
    response = client.get(f"/accounts/cli/authorize/?{query}")
    assert response.status_code == 400
    assert f"<strong>{field}</strong>" in response.content.decode()
    response = client.post(
        "/accounts/cli/authorize/", dict(part.split("=") for part in query.split("&")) | {"answer": "allow"}
    )
    assert response.status_code == 400
    assert not CliGrant.objects.exists()


@pytest.mark.django_db
def test_the_cli_page_sends_a_code_to_the_loopback_only_when_allowed(make_user):
    client = Client()
    client.force_login(make_user("alice"))
    params = {"port": "5000", "state": "abcdefghijklmnop", "code_challenge": CHALLENGE}
    page = client.get("/accounts/cli/authorize/", params)
    assert page.status_code == 200 and "http://127.0.0.1:*" in page["Content-Security-Policy"]
    denied = client.post("/accounts/cli/authorize/", {**params, "answer": "deny"})
    assert denied["Location"] == "http://127.0.0.1:5000/callback?error=access_denied&state=abcdefghijklmnop"
    assert not CliGrant.objects.exists()
    allowed = client.post("/accounts/cli/authorize/", {**params, "answer": "allow"})
    assert allowed["Location"].startswith("http://127.0.0.1:5000/callback?code=")
    assert CliGrant.objects.count() == 1
    # Signed out, the page asks for a sign-in first.
    assert Client().get("/accounts/cli/authorize/", params)["Location"].startswith("/accounts/login/")
