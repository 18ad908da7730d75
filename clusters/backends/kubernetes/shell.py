"""A terminal in a pod through the exec API (a websocket with stdin/stdout/stderr/resize channels)."""

from __future__ import annotations

import json
from typing import Any

RESIZE_CHANNEL = 4


class KubernetesShellSession:
    """The ShellSession protocol over kubernetes.stream's WSClient (binary mode)."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._closed = False

    def read(self, timeout: float = 0.1) -> bytes | None:
        if self._closed:
            return None
        if self._ws.is_open():
            self._ws.update(timeout=timeout)
        # Drain what arrived even when the connection closed with it: the last words of the shell.
        data = self._ws.read_stdout(timeout=0) + self._ws.read_stderr(timeout=0)
        if isinstance(data, str):
            data = data.encode()
        if data:
            return data
        return b"" if self._ws.is_open() else None

    def write(self, data: bytes) -> None:
        if self._ws.is_open():
            self._ws.write_stdin(data)

    def resize(self, rows: int, cols: int) -> None:
        if self._ws.is_open():
            self._ws.write_channel(RESIZE_CHANNEL, json.dumps({"Width": int(cols), "Height": int(rows)}))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._ws.close()
            except OSError:
                pass

    @property
    def exit_code(self) -> int | None:
        """The exit status the API server sends on the error channel when the command ends."""
        if self._ws.is_open():
            return None
        try:
            return self._ws.returncode
        except (ValueError, KeyError, TypeError):  # no status frame arrived (a dropped connection)
            return None
