"""The API's token authentication: ``Authorization: Token <key>`` against hashed keys (teams.tokens)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication

from teams.models import ApiToken
from teams.tokens import digest_of, token_for_key


class TokenAuthentication(DRFTokenAuthentication):
    """DRF's header parsing and 401 answers; the key is checked by its hash, its expiry and its user."""

    def authenticate_credentials(self, key: str):
        token = token_for_key(key)
        if token is None:
            # Said apart so a script's owner knows to make a new one; only the key's holder can learn it.
            expired = ApiToken.objects.filter(digest=digest_of(key), expires_at__lte=timezone.now()).exists()
            raise exceptions.AuthenticationFailed(_("Token expired.") if expired else _("Invalid token."))
        return (token.user, token)
