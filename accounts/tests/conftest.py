"""Fixtures of the sign-on tests: a real slapd with the test directory, a real OpenID provider, the portal
configured for each as an operator's EASYAI_SETTINGS_FILE would configure it, and group mappings."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.urls import clear_url_caches

from accounts.models import GroupMapping
from teams.models import Team
from testing import ldap as test_ldap
from testing import oidc_provider

GUARDIAN = "guardian.backends.ObjectPermissionBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Sign-in throttle counters and the directory sync's mark live in the cache; a test must not inherit them.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def slapd() -> Iterator[test_ldap.Slapd]:
    """A slapd of this test's own on 127.0.0.1, the test directory loaded (testing/ldap.py)."""
    test_ldap.require()
    server = test_ldap.Slapd().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_site(settings, slapd) -> test_ldap.Slapd:
    """The portal signing in through the test directory first, local accounts second."""
    for name, value in test_ldap.ldap_settings(slapd.uri).items():
        setattr(settings, name, value)
    # The periodic sync sees a lock of the password policy too.
    settings.AUTH_LDAP_USER_ATTRLIST = ["*", "pwdAccountLockedTime"]
    settings.AUTHENTICATION_BACKENDS = ["accounts.ldap.LDAPBackend", MODEL_BACKEND, GUARDIAN]
    return slapd


@pytest.fixture
def vision(db) -> Team:
    return Team.objects.create(name="Vision", slug="vision")


@pytest.fixture
def ldap_mappings(vision) -> None:
    """cn=ml-vision → vision: member, cn=ml-vision-admins → vision: admin (the DNs typed in another case)."""
    for group, role in ((test_ldap.VISION_GROUP, "member"), (test_ldap.VISION_ADMINS_GROUP, "admin")):
        mapping = GroupMapping(directory="ldap", group=group.upper().replace("CN=", "cn="), team=vision, role=role)
        mapping.full_clean()
        mapping.save()


@pytest.fixture
def oidc_mappings(vision) -> None:
    GroupMapping.objects.create(directory="oidc", group="ml-vision", team=vision, role="member")
    GroupMapping.objects.create(directory="oidc", group="ml-vision-admins", team=vision, role="admin")


def _reload_urls() -> None:
    import easyai_site.urls

    importlib.reload(easyai_site.urls)
    clear_url_caches()


@pytest.fixture
def oidc_site(settings, asgi_server) -> Iterator[oidc_provider.OidcProvider]:
    """A real OpenID provider (node-oidc-provider) whose one client is the live portal, and the portal's URLs
    with the OIDC routes, as `manage.py serve` builds them when EASYAI_AUTH_BACKENDS names the OIDC backend."""
    oidc_provider.require()
    provider = oidc_provider.OidcProvider(portal_url=asgi_server.http_url).start()
    try:
        for name, value in provider.portal_settings().items():
            setattr(settings, name, value)
        settings.AUTHENTICATION_BACKENDS = ["accounts.oidc.OIDCBackend", MODEL_BACKEND, GUARDIAN]
        _reload_urls()
        yield provider
    finally:
        provider.stop()
        settings.AUTHENTICATION_BACKENDS = [MODEL_BACKEND, GUARDIAN]
        _reload_urls()


@pytest.fixture
def oidc_routes(settings) -> Iterator[None]:
    """The portal's OIDC routes and backend, configured for a provider at a port where nothing listens."""
    try:
        import mozilla_django_oidc  # noqa: F401
    except ImportError:
        oidc_provider.require()
    dead = f"http://127.0.0.1:{test_ldap.free_port()}"
    settings.OIDC_RP_CLIENT_ID = oidc_provider.CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = oidc_provider.CLIENT_SECRET
    settings.OIDC_OP_ISSUER = dead
    for name, path in (("AUTHORIZATION", "auth"), ("TOKEN", "token"), ("USER", "me"), ("JWKS", "jwks")):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", f"{dead}/{path}")
    settings.AUTHENTICATION_BACKENDS = ["accounts.oidc.OIDCBackend", MODEL_BACKEND, GUARDIAN]
    _reload_urls()
    yield
    settings.AUTHENTICATION_BACKENDS = [MODEL_BACKEND, GUARDIAN]
    _reload_urls()
