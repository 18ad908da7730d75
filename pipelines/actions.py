"""What a step may do besides running a job, done by the portal with the run owner's rights when the step's turn
comes: ``register_model`` (a job's folder as the next version of a registered model).

The model registry is another level-4 app, which pipelines may not import: the site's wiring (``easyai_site``,
which may import every app) registers the handler here. A handler takes the run's owner and the step's rendered
config and answers its outputs (``{"model": name, "version": number}``); it raises ValidationError or
PermissionDenied to fail the step with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _

Handler = Callable[..., "dict[str, Any]"]

_handlers: dict[str, Handler] = {}


class ActionUnavailableError(Exception):
    """No app handles this kind of step on this portal."""


def register(kind: str, handler: Handler) -> None:
    _handlers[kind] = handler


def run(kind: str, *, user, config: dict[str, Any]) -> dict[str, Any]:
    handler = _handlers.get(kind)
    if handler is None:
        raise ActionUnavailableError(_("No app here does %(kind)s steps.") % {"kind": kind})
    return handler(user=user, config=config)
