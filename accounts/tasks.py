"""django-q2 tasks of directory sign-on: thin, idempotent (a second delivery finds nothing left to change)."""

from __future__ import annotations


def ldap_sync() -> dict:
    from accounts.ldap import directory_sync

    return directory_sync()
