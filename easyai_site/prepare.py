"""What the portal's entry points prepare before Django reads its settings, which only read.

``manage.py``, ``asgi.py`` and ``wsgi.py`` call ``prepare()`` first: the var/ folder (``EASYAI_VAR_DIR``), the
secret key generated once into it when neither ``SECRET_KEY`` nor ``SECRET_KEY_FILE`` is set (mode 0600, so
sessions and endpoint tokens survive restarts and ``make run`` needs no configuration), and the folder static
files are collected into (``EASYAI_STATIC_ROOT``). The settings module reads the same places through the
functions below and writes nothing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return Path(os.environ.get("EASYAI_VAR_DIR") or BASE_DIR / "var").resolve()


def secret_key_file() -> Path:
    """Where the generated secret key is kept when none is configured."""
    return var_dir() / "secret_key"


def static_root() -> Path:
    return Path(os.environ.get("EASYAI_STATIC_ROOT") or var_dir() / "static").resolve()


def secret_key_configured() -> bool:
    return bool(os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"))


def _make_folder(path: Path, variable: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"{variable}={str(path)!r} cannot be created: {exc.strerror}") from exc


def _write_once(path: Path, text: str) -> None:
    """Write a file readable by the portal's user only, whole or not at all; the first of two processes wins."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def prepare() -> None:
    """Make what the settings read: var/, the generated secret key (unless one is configured), the static root."""
    _make_folder(var_dir(), "EASYAI_VAR_DIR")
    if not secret_key_configured() and not secret_key_file().exists():
        _write_once(secret_key_file(), secrets.token_urlsafe(50))
    _make_folder(static_root(), "EASYAI_STATIC_ROOT")
