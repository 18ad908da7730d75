"""Wait for a condition, not for a time: a test that sleeps instead passes or fails by the machine's speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    check: Callable[[], Any],
    timeout: float = 15.0,
    what: str = "condition",
    *,
    every: float = 0.02,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Call check until it returns something true and return that; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(every)


def stays(check: Callable[[], Any], seconds: float, what: str = "condition", *, every: float = 0.05) -> None:
    """Assert that check stays true for the whole of seconds (the few places where time itself is the condition)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(every)
