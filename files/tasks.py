"""django-q2 task functions: thin and idempotent."""

from __future__ import annotations

from files import uploads


def uploads_expire() -> int:
    return uploads.uploads_expire()
