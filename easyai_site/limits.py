"""Request-body limits, enforced in the ASGI layer before a body is read.

Without them Django spools any body to disk before authentication or a size check is made (an anonymous
10 GiB POST to the sign-in page wrote 300 MiB). Each request gets the limit of its route:

- uploads (``/api/v1/files/…`` and the file browser's ``/files/upload/``): ``EASYAI_UPLOAD_MAX_BYTES``
  plus room for a multipart form's framing;
- everything else (forms, API calls, job specs): ``EASYAI_MAX_BODY_BYTES`` (5 MiB: a spec's 1,000,000
  characters fit).

A body declared larger (``Content-Length``) is answered 413 at once, the connection closed, and not one
byte of it is read. A body sent without a length (chunked) is counted as it streams: past the limit the
application is told the client went away and 413 is answered instead.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 5 * 2**20
MULTIPART_ALLOWANCE = 2**20  # a multipart form's boundaries and part headers around the file itself
_UPLOAD_ROUTES = re.compile(r"^/(api/v1/files/|files/upload/)")


def limit_for(path: str) -> int:
    """The most bytes a request body to this path may have."""
    if _UPLOAD_ROUTES.match(path):
        from files.services import upload_max_bytes

        return upload_max_bytes() + MULTIPART_ALLOWANCE
    return int(getattr(settings, "EASYAI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length, or None when there is none; -1 when it is not a length at all."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 20 else -1
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = f"Request body too large: at most {limit} bytes here.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not wanted: the server closes instead of reading it.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def limit_request_body(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so that no HTTP request body beyond its route's limit is ever read."""

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limit = limit_for(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            if declared < 0:
                await send({"type": "http.response.start", "status": 400, "headers": [(b"connection", b"close")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await _too_large(send, limit)
            return

        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The application stops reading as if the client had gone; the answer is ours.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the application makes of a vanished client, the client gets the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await app(scope, counting_receive, guarded_send)
        if over and not started:
            await _too_large(send, limit)

    return limited
