"""The bridge from a stream's reader thread to its socket's event loop (log and shell sockets)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any


class StoppedError(Exception):
    """The socket went away while a thread was handing it something."""


def hand_over(loop: asyncio.AbstractEventLoop, stop: threading.Event, coroutine_factory: Callable[[], Any]) -> Any:
    """Run a coroutine on the socket's loop from a thread and wait for it, giving up once the socket is gone."""
    if stop.is_set():
        raise StoppedError
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine_factory(), loop)
    except RuntimeError:  # the loop is closed: the server is going away
        raise StoppedError from None
    while True:
        try:
            return future.result(timeout=0.5)
        except concurrent.futures.TimeoutError:
            if stop.is_set():
                future.cancel()
                raise StoppedError from None
