"""The local backend: a job's tasks as OS processes on this host.

The package imports lazily: ``python -m clusters.backends.local.supervisor``
runs once per task and must not pay for Django or the backend on every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clusters.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from clusters.backends.local.backend import LocalBackend

        return LocalBackend
    raise AttributeError(name)
