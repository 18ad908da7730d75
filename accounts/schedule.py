"""The clock's periodic work for directory sign-on: an LDAP sync every EASYAI_DIRECTORY_SYNC_SECONDS.

A cache mark keeps several schedulers from piling passes up; nothing is enqueued when no LDAP backend is
configured or the interval is 0.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache


def ldap_configured() -> bool:
    return any(path.startswith(("accounts.ldap.", "django_auth_ldap.")) for path in settings.AUTHENTICATION_BACKENDS)


def enqueue_due(last: dict) -> bool:
    """Enqueue accounts.tasks.ldap_sync when it is due; True when it was enqueued."""
    every = settings.EASYAI_DIRECTORY_SYNC_SECONDS
    if not every or not ldap_configured():
        return False
    if not cache.add("easyai:directory-sync", 1, timeout=every):
        return False
    from django_q.tasks import async_task

    async_task("accounts.tasks.ldap_sync")
    last["accounts:ldap-sync"] = time.monotonic()
    return True
