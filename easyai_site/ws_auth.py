"""Websocket (and proxied HTTP) authentication: the session cookie for pages, a token for the CLI.

A client without a browser session presents its API token either as the header
``Authorization: Token <key>`` or as the query parameter ``?token=<key>``.
"""

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
    """Sets scope['user'] from a token when one is presented; else leaves the session's user."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = token_from_scope(scope)
        if key:
            user = await _user_for_token(key)
            scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' own stacks
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
