"""A websocket client for the portal's sockets (a task's log, a task's shell), against the live ASGI server."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from testing.asgi import AsgiServer


def open_socket(
    server: AsgiServer, path: str, user=None, origin: str | None = None, **headers: str
) -> ClientConnection:
    """A socket to the server's path, as the user's token client (a browser without a user: it sends an Origin)."""
    if user is not None:
        from conftest import token_key_for

        headers["Authorization"] = f"Token {token_key_for(user)}"
    # A token client needs no Origin; without a token the test is a browser, which sends its page's.
    if user is None and origin is None:
        origin = server.http_url
    return connect(server.ws_url + path, origin=origin, additional_headers=headers, open_timeout=10)


def read_until_closed(ws: ClientConnection, timeout: float = 20.0) -> tuple[list[Any], int | None, str]:
    """Every frame (JSON decoded, bytes as they are) until the server closes, and the close code and reason."""
    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            frames.append(json.loads(message) if isinstance(message, str) else message)
    except ConnectionClosed as closed:
        received = closed.rcvd
        return frames, (received.code if received else None), (received.reason if received else "")


def log_text(frames: list[dict]) -> str:
    """The log lines a log socket's frames carried, joined."""
    return "".join(frame["data"] for frame in frames if frame["type"] == "log")


class Terminal:
    """The client side of a shell socket: bytes in, bytes out, and the control frames seen."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.output = b""
        self.control: list[dict] = []

    def type(self, text: str) -> None:
        self.ws.send(text.encode())  # a binary frame: terminal bytes

    def expect(self, pattern: bytes, timeout: float = 10.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output)
            if found:
                self.output = self.output[found.end() :]
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} in {self.output[-500:]!r}"
            try:
                message = self.ws.recv(timeout=remaining)
            except TimeoutError:
                raise AssertionError(f"no {pattern!r} in {self.output[-500:]!r}") from None
            if isinstance(message, bytes):
                self.output += message
            else:
                self.control.append(json.loads(message))
