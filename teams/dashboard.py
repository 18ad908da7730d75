"""The home page's panels: what apps above teams show a user when they land (running jobs, usage against quota,
clusters, notebooks, services, apps).

The teams app serves the home page but may not import those apps: each registers its panels in its
``AppConfig.ready()`` with a template and a function that gives the template its context for the user's current
team (or None to show nothing). The page renders them in their column by ``order``, then in the order
registered. A panel that
only lists things may use ``LIST_TEMPLATE`` with ``list_panel``'s context instead of a template of its own.
A panel's context reads a bounded number of rows in a fixed number of queries: the page asserts its count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from teams.models import Team

PanelContext = Callable[[HttpRequest, Team], "dict[str, Any] | None"]
MAIN, SIDE = "main", "side"
LIST_TEMPLATE = "teams/_dashboard_list.html"


@dataclass(frozen=True)
class Panel:
    name: str
    template: str
    context: PanelContext
    column: str
    order: int


@dataclass(frozen=True)
class RenderedPanel:
    """A panel for one request: its template is included with ``panel`` bound to this context."""

    name: str
    template: str
    context: dict[str, Any]
    column: str


_panels: dict[str, Panel] = {}


def register(name: str, template: str, context: PanelContext, *, column: str = MAIN, order: int = 100) -> None:
    """Add a panel to the home page (registering a name again replaces that panel in its place)."""
    if column not in (MAIN, SIDE):
        raise ValueError(f"column must be {MAIN!r} or {SIDE!r}, not {column!r}")
    _panels[name] = Panel(name, template, context, column, order)


def unregister(name: str) -> None:
    _panels.pop(name, None)


def panels_for(request: HttpRequest, team: Team) -> list[RenderedPanel]:
    """The panels to show the user for their current team, in order."""
    rendered = []
    for panel in sorted(_panels.values(), key=lambda panel: panel.order):
        context = panel.context(request, team)
        if context is not None:
            rendered.append(RenderedPanel(panel.name, panel.template, context, panel.column))
    return rendered


@dataclass(frozen=True)
class Item:
    """One line of a list panel: a name that links, a state badge (its label; good: a running or ready thing,
    bad: a failed one), a line of detail."""

    name: str
    url: str
    state_label: str = ""
    good: bool = False
    bad: bool = False
    detail: str = ""


def list_panel(*, title: str, items: Iterable[Item], more_url: str, more_label: str, empty: str) -> dict[str, Any]:
    """The context of LIST_TEMPLATE: a card with a title, its items (or the empty line) and a link to the rest."""
    return {"title": title, "items": list(items), "more_url": more_url, "more_label": more_label, "empty": empty}
