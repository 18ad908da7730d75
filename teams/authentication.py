"""The API's token authentication: ``Authorization: Token <key>`` against hashed keys (teams.tokens)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication

from teams.tokens import token_for_key


class TokenAuthentication(DRFTokenAuthentication):
    """DRF's header parsing and 401 answers; the key is checked by its hash, its expiry and its user."""

    def authenticate_credentials(self, key: str):
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        return (token.user, token)
