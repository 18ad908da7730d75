"""Request-body limits, enforced in the ASGI layer before a body is read.

Without them Django spools any body to disk before authentication or a size check is made (an anonymous
10 GiB POST to the sign-in page wrote 300 MiB). Each request gets the limit of its route:

- uploads (``/api/v1/files/…``, a resumable upload's chunks ``/api/v1/uploads/{id}/``, the file browser's
  ``/files/upload/``, and the API routes that take a zip
  archive of a folder: an app's publish, a model version's push): ``EASYAI_UPLOAD_MAX_BYTES`` plus room for a
  multipart form's framing;
- everything else (forms, API calls, job specs): ``EASYAI_MAX_BODY_BYTES`` (5 MiB: a spec's 1,000,000
  characters fit).

A body declared larger (``Content-Length``) is answered 413 at once, the connection closed, and not one
byte of it is read. A body sent without a length (chunked) is counted as it streams: past the limit the
application is told the client went away and 413 is answered instead.

Servers differ in when an application first sees a request. uvicorn hands it over as soon as the headers
are in and reads the body only as the application asks, so the ASGI wrapper (``limit_request_body``) is
enough. daphne (``serve``) reads the whole body into memory or a temporary file first, so under daphne the
same limits are also applied as its HTTP layer receives the headers and each chunk (``limit_daphne_bodies``,
installed by the wrapper when daphne runs it). Requests to the endpoint origin (the proxy to tasks' ports)
get the upload limit there.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_ALLOWANCE = 2**20  # a multipart form's boundaries and part headers around the file itself
# Files, and the API routes that take a folder as a zip archive (an app's publish, a model version's push).
_UPLOAD_ROUTES = re.compile(
    r"^/(api/v1/files/|files/upload/|api/v1/uploads/[^/]+/$|api/v1/apps/$|api/v1/apps/[^/]+/[^/]+/revisions/$"
    r"|api/v1/models/[^/]+/[^/]+/versions/$)"
)

log = logging.getLogger(__name__)


def _upload_limit() -> int:
    from files.services import upload_max_bytes

    return upload_max_bytes() + MULTIPART_ALLOWANCE


def limit_for(path: str) -> int:
    """The most bytes a request body to this path (of the portal) may have."""
    if _UPLOAD_ROUTES.match(path):
        return _upload_limit()
    return int(settings.EASYAI_MAX_BODY_BYTES)


def _limit_for_host(host: str, path: str) -> int:
    try:
        from endpoints import origin as endpoint_origin

        if endpoint_origin.serves(host):
            return _upload_limit()  # a task's own server decides what it accepts
    except Exception:  # no endpoint origin configured: every request is the portal's
        log.debug("no endpoint origin to tell requests apart", exc_info=True)
    return limit_for(path)


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


def _too_large_bytes(limit: int) -> bytes:
    body = f"Request body too large: at most {limit} bytes here.\n".encode()
    head = (
        "HTTP/1.1 413 Request Entity Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def limit_daphne_bodies() -> bool:
    """Apply the limits in daphne's HTTP layer (Twisted), which would otherwise read a whole body before the
    application is called: a declared length past the limit is answered 413 as the headers arrive, and a
    chunked body as its chunks pass the limit; the connection is closed and the request never runs."""
    module = sys.modules.get("daphne.http_protocol")
    request_class = getattr(module, "WebRequest", None)
    if request_class is None or getattr(request_class, "_easyai_body_limit", False):
        return request_class is not None
    got_length = request_class.gotLength
    handle_chunk = request_class.handleContentChunk
    process = request_class.process

    def refuse(request: Any) -> None:
        request._easyai_refused = True
        channel = request.channel
        if channel is not None and channel.transport is not None:
            channel.transport.write(_too_large_bytes(request._easyai_limit))
            channel.loseConnection()

    def limited_got_length(self: Any, length: int | None) -> None:
        raw_path = getattr(self.channel, "_path", b"") or b""
        host = (self.requestHeaders.getRawHeaders(b"host") or [b""])[0]
        path = unquote(raw_path.split(b"?", 1)[0].decode("latin-1"))
        self._easyai_limit = _limit_for_host(host.decode("latin-1"), path)
        self._easyai_received = 0
        self._easyai_refused = False
        if length is not None and length > self._easyai_limit:
            got_length(self, 0)  # nothing of it is kept
            refuse(self)
            return
        got_length(self, length)

    def limited_handle_chunk(self: Any, data: bytes) -> None:
        if getattr(self, "_easyai_refused", False):
            return
        self._easyai_received = getattr(self, "_easyai_received", 0) + len(data)
        if self._easyai_received > getattr(self, "_easyai_limit", self._easyai_received):
            refuse(self)
            return
        handle_chunk(self, data)

    def limited_process(self: Any) -> Any:
        if getattr(self, "_easyai_refused", False):
            return None  # answered 413 already: the application never sees this request
        return process(self)

    request_class.gotLength = limited_got_length
    request_class.handleContentChunk = limited_handle_chunk
    request_class.process = limited_process
    request_class._easyai_body_limit = True
    return True


def limit_request_body(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so that no HTTP request body beyond its route's limit is ever read."""
    limit_daphne_bodies()  # when daphne serves this process (its protocol is loaded before the application)

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
