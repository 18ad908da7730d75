"""Thin django-q2 entry points: the work is in apps/schedule.py."""

from apps import schedule


def scan() -> dict[str, int]:
    return schedule.scan()
