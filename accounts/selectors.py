"""Reads of the accounts app."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import SSHKey


def ssh_keys_of(user) -> QuerySet[SSHKey]:
    """The user's own SSH keys, oldest first (nobody sees another's)."""
    if not getattr(user, "is_authenticated", False):
        return SSHKey.objects.none()
    return SSHKey.objects.filter(user_id=user.pk).order_by("created_at", "pk")


def ssh_key_lines(user_pk) -> list[str]:
    """The public key lines a task's SSH server accepts from this user."""
    return list(SSHKey.objects.filter(user_id=user_pk).order_by("pk").values_list("public_key", flat=True))
