"""The sign-in page's buttons: one per configured single sign-on provider."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def sso_providers() -> list[dict[str, str]]:
    """[{"name", "url"}] for each provider a person may sign in with (OIDC: mozilla-django-oidc's sign-in)."""
    if not any("oidc" in path.lower() for path in settings.AUTHENTICATION_BACKENDS):
        return []
    try:
        url = reverse("oidc_authentication_init")
    except NoReverseMatch:
        return []
    from accounts.oidc import provider_name

    return [{"name": provider_name(), "url": url}]


@register.simple_tag
def ldap_sign_in() -> bool:
    """Whether directory (LDAP) accounts sign in with the password form."""
    return any(path.startswith(("accounts.ldap.", "django_auth_ldap.")) for path in settings.AUTHENTICATION_BACKENDS)
