"""django-q2 task functions: thin and idempotent."""

from __future__ import annotations

from notebooks import workers


def scan() -> dict[str, int]:
    return workers.scan()
