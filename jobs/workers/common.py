"""What the workers' steps share: the back-off between attempts and enqueuing a follow-up now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings


def backoff(attempts: int) -> timedelta:
    """How long to wait before the next try, after this many failed attempts (doubling, capped)."""
    seconds = min(settings.EASYAI_RETRY_BASE * (2 ** max(attempts - 1, 0)), settings.EASYAI_RETRY_MAX)
    return timedelta(seconds=seconds)


def enqueue_now(func: str, *args: Any) -> None:
    from django_q.tasks import async_task

    async_task(func, *args)
