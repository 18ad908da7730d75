"""What every command shares: the config, the portal it points at, and the team it works in."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from easyai_cli import config as config_module
from easyai_cli.client import NotLoggedInError, Portal


class Context:
    def __init__(self, config: config_module.Config):
        self.config = config

    @property
    def url(self) -> str:
        return self.config.effective_url()

    def portal(self, *, token: bool = True) -> Portal:
        """The portal, with the token; NotLoggedInError when a command needs one and there is none."""
        key = self.config.effective_token() if token else ""
        if token and not key:
            raise NotLoggedInError()
        return Portal(self.url, key)

    @cached_property
    def me(self) -> dict[str, Any]:
        return self.portal().get("me/")

    def team(self) -> str:
        """The team commands work in: the one chosen with `easyai team use` (or EASYAI_TEAM), else the portal's."""
        return self.config.effective_team() or (self.me.get("current_team") or "")
