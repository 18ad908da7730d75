"""Where the CLI keeps the portal's address, the API token and the chosen team.

The file is ``~/.easyai/config.yaml`` (``$EASYAI_CONFIG_DIR/config.yaml`` when
set), readable by its owner only: it holds a token that acts as the user.
``EASYAI_URL``, ``EASYAI_TOKEN`` and ``EASYAI_TEAM`` override what it says.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_URL = "http://localhost:8000"
FILE_NAME = "config.yaml"


class ConfigError(Exception):
    """The config file cannot be read as a config, or cannot be written."""


@dataclass
class Config:
    url: str = ""
    token: str = ""
    username: str = ""
    team: str = ""

    def effective_url(self) -> str:
        return (os.environ.get("EASYAI_URL") or self.url or DEFAULT_URL).rstrip("/")

    def effective_token(self) -> str:
        return os.environ.get("EASYAI_TOKEN") or self.token

    def effective_team(self) -> str:
        return os.environ.get("EASYAI_TEAM") or self.team


def config_dir() -> Path:
    override = os.environ.get("EASYAI_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".easyai"


def config_path() -> Path:
    return config_dir() / FILE_NAME


def load() -> Config:
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        # No config yet (a path through a regular file holds none either: saving one there says why it cannot).
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of settings")
    return Config(**{key: str(data.get(key) or "") for key in ("url", "token", "username", "team")})


def save(config: Config) -> Path:
    """Write the config atomically, owner-only: a crash mid-write never leaves half a token behind."""
    directory = config_dir()
    path = directory / FILE_NAME
    try:
        return _write(directory, path, {key: value for key, value in vars(config).items() if value})
    except OSError as exc:
        raise ConfigError(f"cannot save the config in {path}: {exc.strerror or exc}") from None


def _write(directory: Path, path: Path, data: dict[str, str]) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 from the start, so the token is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
