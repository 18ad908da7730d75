"""Template helpers for job pages: the state as faces show it."""

from __future__ import annotations

from django import template

from jobs import state

register = template.Library()


@register.filter
def state_label(job) -> str:
    """The job's state for people: "failed, held for debugging" while a failed task is paused, else its name."""
    return state.state_label(job.state, getattr(job, "held_mode", ""))
