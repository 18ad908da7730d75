"""Where a job came from, for the jobs lists: apps above jobs that start jobs of their own (a pipeline run's steps)
say so here, and each list row links back to it.

The jobs app may not import them: each registers, in its ``AppConfig.ready()``, a function that takes the pks of
the jobs a page shows and answers ``{pk: Origin}`` for those that are its own, in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    label: str  # "pipeline nightly · r-3k9x2m4q · train"
    url: str


OriginSource = Callable[[list[int]], "dict[int, Origin]"]

_sources: list[OriginSource] = []


def register(source: OriginSource) -> None:
    if source not in _sources:
        _sources.append(source)


def attach(jobs: Iterable) -> None:
    """Set ``job.origin`` (an Origin or None) on each job of a page."""
    jobs = list(jobs)
    found: dict[int, Origin] = {}
    pks = [job.pk for job in jobs]
    if pks:
        for source in _sources:
            found.update(source(pks))
    for job in jobs:
        job.origin = found.get(job.pk)
