"""Websocket (and proxied HTTP) authentication: the session cookie for pages, a token for the CLI.

A client without a browser session presents its API token either as the header
``Authorization: Token <key>`` or as the query parameter ``?token=<key>``.
"""

import time
from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str):
    # The same check as the API's: the key's hash, its expiry, an active user (and last-used marked).
    from teams.tokens import user_for_key

    return user_for_key(key)


def token_from_scope(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "token":
                return parts[1]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][-1]
    return None


class TokenAuthMiddleware:
    """Sets scope['user'] from a token when one is presented; else leaves the session's user.

    ``reuse_for`` seconds (the endpoint origin's, where every proxied request comes with the token): the
    answer for a token is kept that long, as the proxy keeps its permission answers, so a revoked or
    expired token is refused within those seconds rather than at once. 0 (the portal's sockets): read
    every time."""

    def __init__(self, inner, reuse_for: float = 0.0):
        self.inner = inner
        self.reuse_for = reuse_for
        self._answers: dict[str, tuple[float, Any]] = {}  # the key's digest -> (until, user or None)

    async def __call__(self, scope, receive, send):
        key = token_from_scope(scope)
        if key:
            user = await self._user(key)
            scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)

    async def _user(self, key: str):
        if not self.reuse_for:
            return await _user_for_token(key)
        from teams.tokens import digest_of

        digest, now = digest_of(key), time.monotonic()
        hit = self._answers.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await _user_for_token(key)
        if len(self._answers) > 10_000:  # many tokens: start over rather than grow
            self._answers.clear()
        self._answers[digest] = (now + self.reuse_for, user)
        return user


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' own stacks
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
