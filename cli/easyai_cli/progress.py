"""A plain progress bar on stderr, drawn only when stderr is a terminal (scripts and logs get no noise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from easyai_cli.output import size

WIDTH = 30
# Redrawing on every 64 KiB chunk of a fast download would cost more than the copy; a few times a second is enough.
MIN_INTERVAL = 0.1


class Progress:
    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None, enabled: bool | None = None):
        self.label = label
        self.total = total if total and total > 0 else None
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn = 0.0

    def add(self, amount: int) -> None:
        self.done += amount
        now = time.monotonic()
        if self.enabled and now - self._drawn >= MIN_INTERVAL:
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        rate = f"{size(self.done / elapsed)}/s"
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(WIDTH * fraction)
            bar = "#" * filled + "-" * (WIDTH - filled)
            text = f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {size(self.done)}/{size(self.total)} {rate}"
        else:
            text = f"\r{self.label} {size(self.done)} {rate}"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
