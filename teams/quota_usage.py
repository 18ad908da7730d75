"""What a team holds now on each cluster, to show against its quotas on the team page.

The jobs app knows (jobs/quota.py: the resources of the team's jobs that hold them), but teams may not import
it: jobs registers its answer here in its ``AppConfig.ready()``. Without one, nothing is shown as used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from teams.models import Team


class Held(NamedTuple):
    cpu_milli: int
    memory_bytes: int
    gpu: int


HeldByCluster = Callable[[Team], "dict[int, Held]"]  # cluster id -> what the team's jobs hold there now

_source: HeldByCluster | None = None


def register(source: HeldByCluster) -> None:
    global _source
    _source = source


def held(team: Team) -> dict[int, Held] | None:
    """Cluster id -> what the team holds there now; None when no app tells (nothing to show)."""
    return _source(team) if _source is not None else None
