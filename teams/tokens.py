"""API tokens at rest: made, hashed, looked up and marked used. Services create and revoke them.

A key is shown once, when it is made; the database keeps its SHA-256 (``ApiToken.digest``) and its
first characters (``ApiToken.prefix``). The API, the websockets and the endpoint proxy all authenticate
through user_for_key.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from teams.models import ApiToken
from teams.prepared import PreparedRead, first_of

KEY_PREFIX = "eai_"
# What the profile page and the admin show: "eai_" and 8 characters of the key (48 bits, not enough to use).
SHOWN_LENGTH = len(KEY_PREFIX) + 8
# last_used_at is written at most this often per token, so a busy script does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Longer than any key we make, longer than DRF's 40-character keys: anything longer is not a key.
MAX_KEY_LENGTH = 200


def new_key() -> str:
    """A fresh key: eai_ and 40 URL-safe random characters (240 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(30)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def prefix_of(key: str) -> str:
    # Keys made before hashing (40 hex characters) have no eai_: their first 8 characters tell them apart.
    return key[:SHOWN_LENGTH] if key.startswith(KEY_PREFIX) else key[:8]


@PreparedRead
def _token_by_digest(digest: str):
    return first_of(ApiToken.objects.select_related("user").filter(digest=digest))


def token_for_key(key: str) -> ApiToken | None:
    """The live token with this key (its user loaded), or None: unknown, expired, or its user inactive."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    # Looked up by the hash: the database compares digests, never keys, so timing tells nothing of a key.
    # Read on every API request: compiled once per connection (teams.prepared), never kept between requests,
    # so a revoked token stops working at once.
    token = _token_by_digest.first(digest=digest_of(key))
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    stale_before = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= stale_before:
        # One UPDATE a minute at most, and none when another request just made it.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token


def user_for_key(key: str):
    """The active user a key authenticates, or None."""
    token = token_for_key(key)
    return token.user if token is not None else None
