"""Sign-in through an LDAP directory (django-auth-ldap) with teams that follow the directory's groups.

``accounts.ldap.LDAPBackend`` is django-auth-ldap's backend (every ``AUTH_LDAP_*`` setting as its documentation
says) plus, at each successful sign-in, the person's directory account noted and their memberships matched to
their groups (accounts.services). ``directory_sync`` is the periodic pass: each directory account looked up
again with the service account, its name and e-mail copied, its memberships matched, and one the directory no
longer has, or has disabled, loses API tokens, granted memberships and the right to sign in.

Imported only where django-auth-ldap is installed (requirements-sso.txt): settings name it, nothing imports it.
"""

from __future__ import annotations

import logging
import threading

import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPBackend as _LDAPBackend
from django_auth_ldap.backend import ldap_error
from django_auth_ldap.config import LDAPGroupQuery

from accounts import services
from accounts.groups import normalize
from accounts.models import Directory, DirectoryAccount, DirectoryChange

log = logging.getLogger(__name__)
Trigger = DirectoryChange.Trigger


class DirectoryUnavailableError(Exception):
    """The directory did not answer (or refused the service account): nothing was changed."""


class LDAPBackend(_LDAPBackend):
    """django-auth-ldap's backend; a sign-in also brings the person's team memberships in line with their groups."""

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            groups = ldap_user.group_dns
        except ldap.LDAPError as exc:
            # Signed in, but the groups could not be read: memberships stay as they were until the next sign-in.
            log.warning("LDAP groups of %s could not be read, memberships left as they were: %s", user, exc)
            groups = None
        services.directory_account_seen(
            user=user, directory=Directory.LDAP, subject=ldap_user.dn, trigger=Trigger.SIGN_IN
        )
        if groups is not None:
            services.memberships_follow_groups(
                user=user, directory=Directory.LDAP, groups=groups, trigger=Trigger.SIGN_IN
            )
        return user


def _check_reachable(backend: LDAPBackend) -> None:
    """Bind as the service account once: a directory that does not answer stops the pass before any change."""
    config = backend.settings
    connection = ldap.initialize(config.SERVER_URI)
    try:
        options = {**(getattr(settings, "AUTH_LDAP_GLOBAL_OPTIONS", None) or {}), **config.CONNECTION_OPTIONS}
        for option, value in options.items():
            connection.set_option(option, value)
        if config.START_TLS:
            connection.start_tls_s()
        connection.simple_bind_s(config.BIND_DN, config.BIND_PASSWORD)
    except ldap.LDAPError as exc:
        raise DirectoryUnavailableError(
            f"the directory at {config.SERVER_URI} cannot be used: {_describe(exc)}"
        ) from exc
    finally:
        try:
            connection.unbind_s()
        except ldap.LDAPError:
            pass


def _describe(exc: ldap.LDAPError) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("desc") or exc)


def refusal(backend: LDAPBackend, ldap_user) -> str:
    """Why the directory no longer lets this person in ("" when it does): the deny group, the required group,
    or a lock by the password policy (seen when AUTH_LDAP_USER_ATTRLIST asks for pwdAccountLockedTime)."""
    config = backend.settings
    attrs = ldap_user.attrs or {}
    if any(key.lower() == "pwdaccountlockedtime" for key in attrs):
        return "locked in the directory (pwdAccountLockedTime)"
    groups = {normalize("ldap", dn) for dn in ldap_user.group_dns}
    if config.DENY_GROUP and normalize("ldap", config.DENY_GROUP) in groups:
        return f"in the directory's deny group {config.DENY_GROUP}"
    required = config.REQUIRE_GROUP
    if required is not None:
        query = required if isinstance(required, LDAPGroupQuery) else LDAPGroupQuery(required)
        if not query.resolve(ldap_user):
            return "no longer in the group AUTH_LDAP_REQUIRE_GROUP names"
    return ""


def directory_sync() -> dict[str, int | str]:
    """One pass over the LDAP accounts: copied attributes, memberships matched, removed people's access taken away.

    A directory that does not answer, at the start or midway, ends the pass with nothing more changed: an outage
    never looks like everyone leaving.
    """
    backend = LDAPBackend()
    counts: dict[str, int | str] = {"seen": 0, "removed": 0, "changes": 0}
    try:
        _check_reachable(backend)
    except DirectoryUnavailableError as exc:
        log.warning("directory sync skipped: %s", exc)
        return {**counts, "error": str(exc)}
    errors: list[Exception] = []
    thread = threading.get_ident()

    def failed(sender, context=None, exception=None, **kwargs) -> None:
        if threading.get_ident() == thread:
            errors.append(exception)

    ldap_error.connect(failed, weak=False, dispatch_uid=f"accounts-directory-sync-{thread}")
    try:
        accounts = DirectoryAccount.objects.filter(directory=Directory.LDAP, removed_at__isnull=True).select_related(
            "user"
        )
        for account in accounts.order_by("pk").iterator():
            errors.clear()
            user = backend.populate_user(account.user.get_username())
            if errors:
                message = f"the directory stopped answering while syncing {account.user}: {errors[0]}"
                log.warning("directory sync stopped: %s", message)
                return {**counts, "error": message}
            if user is None:
                changes = services.directory_account_removed(account=account, reason="no longer in the directory")
                counts["removed"] += 1
            elif reason := refusal(backend, user.ldap_user):
                changes = services.directory_account_removed(account=account, reason=reason)
                counts["removed"] += 1
            else:
                services.directory_account_seen(
                    user=user, directory=Directory.LDAP, subject=user.ldap_user.dn, trigger=Trigger.SYNC
                )
                changes = services.memberships_follow_groups(
                    user=user, directory=Directory.LDAP, groups=user.ldap_user.group_dns, trigger=Trigger.SYNC
                )
                counts["seen"] += 1
            counts["changes"] += len(changes)
    finally:
        ldap_error.disconnect(dispatch_uid=f"accounts-directory-sync-{thread}")
    return counts
