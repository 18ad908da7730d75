"""Panels that apps above jobs add to the job page (monitoring's usage charts, say).

The jobs app may not import them: each registers its panel in its ``AppConfig.ready()`` with a template and a
function that gives the template its context for one job (or None to show nothing for that job). The job page
renders the panels in the order they were registered, under the tasks table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from jobs.models import Job

PanelContext = Callable[[HttpRequest, Job], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Panel:
    name: str
    template: str
    context: PanelContext


@dataclass(frozen=True)
class RenderedPanel:
    """A panel for one job: its template is included with ``panel`` bound to this context."""

    name: str
    template: str
    context: dict[str, Any]


_panels: dict[str, Panel] = {}


def register(name: str, template: str, context: PanelContext) -> None:
    """Add a panel to the job page (registering a name again replaces that panel in its place)."""
    _panels[name] = Panel(name, template, context)


def unregister(name: str) -> None:
    _panels.pop(name, None)


def registered() -> list[Panel]:
    return list(_panels.values())


def panels_for(request: HttpRequest, job: Job) -> list[RenderedPanel]:
    """The panels to show on this job's page, in order (the viewer may see the job: the page checked)."""
    rendered = []
    for panel in _panels.values():
        context = panel.context(request, job)
        if context is not None:
            rendered.append(RenderedPanel(panel.name, panel.template, context))
    return rendered
