"""A real OpenID provider for the sign-on tests: node-oidc-provider under Debian's ``nodejs`` on loopback.

``OidcProvider`` runs ``testing/oidc/provider.js`` (its one dependency pinned in ``testing/oidc/package.json``
and ``package-lock.json``, installed by ``npm ci`` into ``testing/oidc/node_modules``, which git ignores) on a
free port of 127.0.0.1, with the portal as its one client and the people of ``ACCOUNTS``. ``portal_settings``
are the portal's OIDC settings for it, as an operator's EASYAI_SETTINGS_FILE would write them, the endpoints
read from the provider's discovery document.

Missing node, npm or the installed package skips the tests, saying what to run; ``EASYAI_REQUIRE_SSO=1`` (CI)
fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from testing.ldap import free_port

FOLDER = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "easyai-portal"
CLIENT_SECRET = "easyai-portal-secret-for-tests"

# Each person's password is "<login>-pw".
ACCOUNTS = {
    "olivia": {
        "claims": {
            "email": "olivia@example.com",
            "email_verified": True,
            "given_name": "Olivia",
            "family_name": "Okafor",
            "name": "Olivia Okafor",
            "preferred_username": "olivia",
            "groups": ["ml-vision"],
        }
    },
    "oscar": {
        "claims": {
            "email": "oscar@example.com",
            "email_verified": True,
            "given_name": "Oscar",
            "family_name": "Ortiz",
            "name": "Oscar Ortiz",
            "preferred_username": "oscar",
            "groups": ["ml-vision-admins"],
        }
    },
}


def password_of(login: str) -> str:
    return f"{login}-pw"


def missing() -> str:
    """Why the OIDC tests cannot run here, or ""."""
    if not shutil.which("node"):
        return "node is missing: apt-get install nodejs npm"
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        return f"the test provider's package is not installed: npm ci --prefix {FOLDER}"
    try:
        import mozilla_django_oidc  # noqa: F401
    except ImportError:
        return "mozilla-django-oidc is not installed: pip install -r requirements-sso.txt"
    return ""


def install() -> None:
    """npm ci into testing/oidc/node_modules when npm is here and the package is not yet installed."""
    if (FOLDER / "node_modules" / "oidc-provider").is_dir() or not shutil.which("npm"):
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(FOLDER)], check=False, capture_output=True, timeout=300
    )


def require() -> None:
    install()
    reason = missing()
    if not reason:
        return
    if os.environ.get("EASYAI_REQUIRE_SSO") == "1":
        pytest.fail(f"EASYAI_REQUIRE_SSO=1 but {reason}")
    pytest.skip(reason)


class OidcProvider:
    def __init__(self, *, portal_url: str, accounts: dict | None = None) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.portal_url = portal_url.rstrip("/")
        self.folder = Path(tempfile.mkdtemp(prefix="easyai-oidc-"))
        self.accounts = {
            login: {"password": password_of(login), **data} for login, data in (accounts or ACCOUNTS).items()
        }
        self.process: subprocess.Popen | None = None
        self.discovery: dict = {}

    def start(self) -> OidcProvider:
        accounts = self.folder / "accounts.json"
        accounts.write_text(json.dumps(self.accounts))
        env = {
            **os.environ,
            "OIDC_PORT": str(self.port),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": f"{self.portal_url}/oidc/callback/",
            "OIDC_LOGOUT_URIS": f"{self.portal_url}/accounts/login/",
            "OIDC_ACCOUNTS": str(accounts),
        }
        self.log = (self.folder / "provider.log").open("wb")
        self.process = subprocess.Popen(
            ["node", str(FOLDER / "provider.js")], cwd=FOLDER, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited: {self.output()}")
            try:
                answer = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                if answer.ok:
                    self.discovery = answer.json()
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the OIDC provider did not answer in 30 s: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return (self.folder / "provider.log").read_text(errors="replace")[-3000:]

    def portal_settings(self) -> dict:
        d = self.discovery
        return {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_OP_ISSUER": d["issuer"],
            "OIDC_OP_AUTHORIZATION_ENDPOINT": d["authorization_endpoint"],
            "OIDC_OP_TOKEN_ENDPOINT": d["token_endpoint"],
            "OIDC_OP_USER_ENDPOINT": d["userinfo_endpoint"],
            "OIDC_OP_JWKS_ENDPOINT": d["jwks_uri"],
            "OIDC_OP_LOGOUT_ENDPOINT": d["end_session_endpoint"],
            "EASYAI_OIDC_PROVIDER_NAME": "Test SSO",
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
