"""Websockets to the portal (live logs, shells), with the token header and errors as one-line messages."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from easyai_cli.client import CLIError, Portal, UnreachableError

OPEN_TIMEOUT = 15.0
MAX_MESSAGE = 16 * 2**20


def open_socket(portal: Portal, path: str, params: dict[str, Any] | None = None, *, what: str = "") -> ClientConnection:
    url = portal.ws_url(path)
    if params:
        url += "?" + urlencode({key: value for key, value in params.items() if value is not None})
    headers = {"Authorization": f"Token {portal.token}"} if portal.token else {}
    try:
        return connect(
            url,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT,
            max_size=MAX_MESSAGE,
            # The portal checks the Origin of browser sockets; the CLI is not a browser and sends the portal's own.
            origin=portal.url,  # type: ignore[arg-type]
            user_agent_header=portal.session.headers.get("User-Agent"),
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 401:
            raise CLIError("the portal refused the token: run `easyai login` again or check EASYAI_TOKEN") from None
        if status == 404:
            raise CLIError(f"{what or path}: not found (or you may not see it)") from None
        if status == 403:
            raise CLIError(
                f"{what or path}: the portal refused the connection (403: no permission, or not open)"
            ) from None
        raise CLIError(f"{what or path}: the portal refused the connection ({status})") from None
    except InvalidURI:
        raise CLIError(f"{portal.url} is not a portal URL: write it as http://host:port or https://host") from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise UnreachableError(portal.url, str(exc) or type(exc).__name__) from None


def closed_message(exc: ConnectionClosed, what: str) -> str:
    """Why the portal closed a socket, in its words when it gave any."""
    frame = exc.rcvd
    if frame is None:
        return f"{what}: the connection to the portal was lost"
    reason = frame.reason or {4401: "not signed in", 4403: "no permission", 4404: "not found"}.get(frame.code, "")
    return f"{what}: the portal closed the connection ({frame.code}{': ' + reason if reason else ''})"


def control(message: str | bytes) -> dict[str, Any] | None:
    """A JSON text frame as a dict; None for anything else (binary frames carry data)."""
    if isinstance(message, bytes):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
