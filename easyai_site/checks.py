"""The site's system checks (``manage.py check`` and every command that runs them)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=False)
def secret_key_kept(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A key made for this process alone signs sessions and endpoint tokens nobody else can check."""
    if not settings.SECRET_KEY_EPHEMERAL:
        return []
    return [
        checks.Warning(
            "SECRET_KEY is not set and var/secret_key was not prepared: this process signs with a key of its own.",
            hint="Start the portal through manage.py (which generates var/secret_key) or set SECRET_KEY.",
            id="easyai.W001",
        )
    ]
