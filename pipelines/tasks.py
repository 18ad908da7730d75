"""Thin django-q2 tasks: each takes ids, and calls the engine or a service."""

from __future__ import annotations

from django.core.cache import cache

from pipelines import engine, notify, schedule


def advance() -> dict:
    """One engine tick: due schedules make their runs, then every active run moves on."""
    try:
        for _round in range(schedule.MAX_ROUNDS):
            cache.delete(schedule.AGAIN_KEY)
            made = schedule.run_schedules()
            tick = engine.advance()
            if not cache.get(schedule.AGAIN_KEY):
                break  # nobody asked for a tick while this one ran
        return {"runs": tick.runs, "started": tick.started, "ended": tick.ended, "scheduled": made}
    finally:
        schedule.release_advance()


def notify_run(run_pk: int) -> dict[str, bool]:
    return notify.send_for_run(run_pk)
