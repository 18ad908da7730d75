"""The user's apps on the home page (teams.dashboard): a list panel, newest first."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from apps.models import AppState
from apps.selectors import apps_visible
from teams import dashboard
from teams.models import Team

SHOWN = 5


def my_apps(request: HttpRequest, team: Team) -> dict[str, Any]:
    """The user's own apps in the team (two queries: the apps with their runs, the runs' tasks)."""
    apps = apps_visible(request.user).filter(team=team, owner=request.user).order_by("-id")[:SHOWN]
    return dashboard.list_panel(
        title=_("Your apps"),
        items=[
            dashboard.Item(
                name=app.name,
                url=reverse("app-detail", args=[team.slug, app.name]),
                state_label=app.get_state_display(),
                good=app.state == AppState.RUNNING,
                bad=app.state == AppState.FAILED,
                detail=app.get_kind_display(),
            )
            for app in apps
        ],
        more_url=reverse("app-list"),
        more_label=_("All apps"),
        empty=_("No app yet."),
    )
