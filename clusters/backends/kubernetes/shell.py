"""Programs in a pod through the exec API (a websocket with stdin/stdout/stderr/status/resize channels): a
terminal (the web shell), a byte stream (an SSH connection's server end), and short commands (the toolbox's
files)."""

from __future__ import annotations

import json
import logging
from typing import Any

import yaml
from kubernetes.stream import ws_client
from websocket import WebSocketException

log = logging.getLogger(__name__)

RESIZE_CHANNEL = 4


def discard_copies(ws: Any) -> Any:
    """The client keeps a copy of every stdout and stderr byte for ``read_all``, which nothing here calls: a long
    session (an SSH connection copying gigabytes) would hold it all. Bytes are read from the channels only."""
    ws._all = ws_client._IgnoredIO()
    return ws


def update(ws: Any, timeout: float) -> None:
    """Take in what arrived within the timeout; a connection that broke counts as closed."""
    if not ws.is_open():
        return
    try:
        ws.update(timeout=timeout)
    except (OSError, WebSocketException):
        try:
            ws.close()
        except (OSError, WebSocketException):
            ws._connected = False


def exit_status(ws: Any) -> int | None:
    """The exit status the API server sent on the status channel once the command ended (None before, or when
    no status came: a dropped connection)."""
    if ws.is_open():
        return None
    try:
        return ws.returncode
    except (ValueError, KeyError, TypeError, IndexError, yaml.YAMLError):
        return None


class _ExecSession:
    """An exec's connection (kubernetes.stream's WSClient, binary mode): written to while open, closed once, its
    exit status from the status channel."""

    def __init__(self, ws: Any) -> None:
        self._ws = discard_copies(ws)
        self._closed = False

    def write(self, data: bytes) -> None:
        if data and self._ws.is_open():
            try:
                self._ws.write_stdin(bytes(data))
            except (OSError, WebSocketException):
                pass  # the connection broke: the next read says the program ended

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._ws.close()
            except (OSError, WebSocketException):
                pass

    @property
    def exit_code(self) -> int | None:
        """The exit status the API server sends on the status channel when the command ends."""
        return exit_status(self._ws)


class KubernetesShellSession(_ExecSession):
    """The ShellSession protocol over kubernetes.stream's WSClient (binary mode)."""

    def read(self, timeout: float = 0.1) -> bytes | None:
        if self._closed:
            return None
        update(self._ws, timeout)
        # Drain what arrived even when the connection closed with it: the last words of the shell.
        data = self._ws.read_stdout(timeout=0) + self._ws.read_stderr(timeout=0)
        if isinstance(data, str):
            data = data.encode()
        if data:
            return data
        return b"" if self._ws.is_open() else None

    def resize(self, rows: int, cols: int) -> None:
        if self._ws.is_open():
            self._ws.write_channel(RESIZE_CHANNEL, json.dumps({"Width": int(cols), "Height": int(rows)}))


class KubernetesStreamSession(_ExecSession):
    """The StreamSession protocol over an exec without a terminal: stdin and stdout carry bytes as they are
    (an SSH connection), stderr is logged, the exit status comes on the status channel.

    The exec API's stdin has no end of its own: closing the session ends it, and the program sees the end of
    its input then."""

    def __init__(self, ws: Any, what: str = "") -> None:
        super().__init__(ws)
        self._what = what

    def read(self, timeout: float = 0.1) -> bytes | None:
        if self._closed:
            return None
        update(self._ws, timeout)
        errors = self._ws.read_stderr(timeout=0)
        if errors:
            log.info("%s: %s", self._what or "exec", bytes(errors).decode(errors="replace").rstrip())
        data = self._ws.read_stdout(timeout=0)
        if data:
            return bytes(data)
        return b"" if self._ws.is_open() else None
