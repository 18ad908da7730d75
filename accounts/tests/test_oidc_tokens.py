"""The ID token's checks (signature, audience, expiry, issuer, nonce), each able to refuse a sign-in, and an
unreachable provider answered with a clear page, not an error."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation
from django.test import Client

from testing import oidc_provider

pytestmark = pytest.mark.django_db


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(settings, oidc_routes):
    key = _key()
    settings.OIDC_RP_IDP_SIGN_KEY = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    from accounts.oidc import OIDCBackend

    def token(*, private=key, **changes) -> str:
        now = int(time.time())
        claims = {
            "iss": settings.OIDC_OP_ISSUER, "sub": "olivia", "aud": oidc_provider.CLIENT_ID,
            "iat": now, "exp": now + 300, "nonce": "n-1",
        }  # fmt: skip
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})

    return OIDCBackend(), token


def test_a_good_id_token_passes(signer):
    backend, token = signer
    assert backend.verify_token(token(), nonce="n-1")["sub"] == "olivia"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"aud": "another-client"}, "Audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iss": "http://impostor.example"}, "(?i)issuer"),
        ({"exp": None}, "exp"),
    ],
)
def test_an_id_token_for_someone_else_or_out_of_date_is_refused(signer, change, words):
    backend, token = signer
    with pytest.raises(SuspiciousOperation, match=words):
        backend.verify_token(token(**change), nonce="n-1")


def test_an_id_token_signed_by_another_key_is_refused(signer):
    backend, token = signer
    with pytest.raises(SuspiciousOperation, match="Signature"):
        backend.verify_token(token(private=_key()), nonce="n-1")


def test_an_id_token_of_another_sign_in_is_refused_by_its_nonce(signer):
    backend, token = signer
    with pytest.raises(SuspiciousOperation, match="Nonce"):
        backend.verify_token(token(), nonce="n-2")


def test_an_unsigned_id_token_is_refused(signer):
    backend, _token = signer
    unsigned = jwt.encode({"sub": "olivia", "aud": oidc_provider.CLIENT_ID}, None, algorithm="none")
    with pytest.raises(SuspiciousOperation):
        backend.verify_token(unsigned, nonce="n-1")


def test_a_provider_that_cannot_be_reached_gets_a_clear_page(oidc_routes):
    client = Client()
    # The sign-in starts (a redirect to the provider), as a browser would follow it.
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302
    state = start["Location"].split("state=")[1].split("&")[0]
    # The provider sent the browser back with a code; the portal cannot reach its token endpoint.
    response = client.get(f"/oidc/callback/?code=abc&state={state}")
    assert response.status_code == 503
    assert "cannot be reached right now" in response.content.decode()


def test_a_callback_with_a_state_the_portal_never_made_is_refused_with_the_sign_in_page(oidc_routes):
    client = Client()
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/?code=abc&state=forged", follow=True)
    assert response.status_code == 200
    assert "did not complete" in response.content.decode()


def test_the_sign_in_page_shows_a_button_per_configured_provider(oidc_routes, settings):
    settings.EASYAI_OIDC_PROVIDER_NAME = "Example SSO"
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with Example SSO" in page
    assert 'href="/oidc/authenticate/"' in page


def test_without_a_provider_the_sign_in_page_has_no_button():
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with" not in page
