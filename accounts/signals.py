"""Telling a person why a directory sign-in failed: a directory that does not answer is said as such.

django-auth-ldap reports an unreachable directory through its ``ldap_error`` signal and then simply declines,
so the next backend (the local accounts' ModelBackend) still signs a local admin in. When every backend
declined, ``user_login_failed`` adds the reason to the sign-in page's messages.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext as _

log = logging.getLogger(__name__)

UNREACHABLE = "_easyai_directory_unreachable"


def _ldap_error(sender, context=None, user=None, request=None, exception=None, **kwargs) -> None:
    if request is not None and context in {"authenticate", "search_for_user_dn"}:
        setattr(request, UNREACHABLE, exception)


def _login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    if request is None or getattr(request, UNREACHABLE, None) is None:
        return
    messages.error(
        request,
        _(
            "The directory (LDAP) cannot be reached, so directory accounts cannot sign in right now. "
            "Try again in a few minutes; local accounts still sign in."
        ),
        fail_silently=True,
    )


def connect() -> None:
    user_login_failed.connect(_login_failed, dispatch_uid="accounts-login-failed")
    try:
        from django_auth_ldap.backend import ldap_error
    except ImportError:  # django-auth-ldap is an extra (requirements-sso.txt)
        return
    ldap_error.connect(_ldap_error, dispatch_uid="accounts-ldap-error")
