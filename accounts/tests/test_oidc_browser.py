"""OIDC sign-in in a real headless browser against a real OpenID provider (node-oidc-provider on loopback,
testing/oidc_provider.py): the sign-in page's button, the provider's own password form, the authorization-code
flow with PKCE (the provider requires it) back to the portal, the ID token verified, claims copied, groups
mapped to a team, and sign-out ending the provider's session too."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from accounts.models import DirectoryAccount, DirectoryChange
from teams.models import Membership

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

User = get_user_model()


def provider_sign_in(page: Page, login: str, password: str) -> None:
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in to the provider").click()


def test_oidc_sign_in_through_the_provider_maps_claims_and_groups(page: Page, asgi_server, oidc_site, oidc_mappings):
    page.goto(f"{asgi_server.http_url}/teams/")
    # Signed out: the sign-in page, with a button for the provider beside the password form.
    expect(page).to_have_url(f"{asgi_server.http_url}/accounts/login/?next=/teams/")
    button = page.get_by_role("link", name="Sign in with Test SSO")
    expect(button).to_be_visible()
    button.click()
    # The provider's page, asked with PKCE (S256) and a nonce.
    assert page.url.startswith(oidc_site.issuer), page.url
    provider_sign_in(page, "olivia", "wrong-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
    assert not User.objects.filter(email="olivia@example.com").exists()
    provider_sign_in(page, "olivia", "olivia-pw")
    # Back on the portal, where the sign-in started, signed in.
    expect(page).to_have_url(f"{asgi_server.http_url}/teams/")
    expect(page.get_by_role("cell", name="Vision", exact=True)).to_be_visible()
    olivia = User.objects.get(username="olivia")
    assert (olivia.first_name, olivia.last_name, olivia.email) == ("Olivia", "Okafor", "olivia@example.com")
    account = DirectoryAccount.objects.get(user=olivia)
    assert account.directory == "oidc" and account.subject == f"{oidc_site.issuer} olivia"
    assert Membership.objects.get(user=olivia).role == "member"
    assert Membership.objects.get(user=olivia).source == "directory"
    assert DirectoryChange.objects.get(user=olivia).message == (
        "olivia added to team vision as member by directory sync (at sign-in)"
    )


def test_sign_out_ends_the_providers_session_too(page: Page, asgi_server, oidc_site):
    page.goto(f"{asgi_server.http_url}/oidc/authenticate/?next=/accounts/profile/")
    provider_sign_in(page, "oscar", "oscar-pw")
    expect(page).to_have_url(f"{asgi_server.http_url}/accounts/profile/")
    page.get_by_role("button", name="oscar").click()
    page.get_by_role("button", name="Sign out").click()
    # The portal's session is gone; the provider asks to confirm its own sign-out.
    expect(page.get_by_role("button", name="Yes, sign me out")).to_be_visible()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{asgi_server.http_url}/accounts/login/")
    # The provider's session ended too: signing in asks for the password again.
    page.get_by_role("link", name="Sign in with Test SSO").click()
    expect(page.get_by_label("Password")).to_be_visible()
