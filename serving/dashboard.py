"""The user's inference services on the home page (teams.dashboard): a list panel, newest first."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from serving.models import ServiceState
from serving.selectors import services_visible
from teams import dashboard
from teams.models import Team

SHOWN = 5


def my_services(request: HttpRequest, team: Team) -> dict[str, Any]:
    """The user's own services in the team (one query)."""
    services = services_visible(request.user).filter(team=team, owner=request.user).order_by("-id")[:SHOWN]
    return dashboard.list_panel(
        title=_("Your services"),
        items=[
            dashboard.Item(
                name=service.name,
                url=reverse("service-detail", args=[team.slug, service.name]),
                state_label=service.get_state_display(),
                good=service.state == ServiceState.READY,
                bad=service.state == ServiceState.FAILED,
                detail=service.model.name,
            )
            for service in services
        ],
        more_url=reverse("service-list"),
        more_label=_("All services"),
        empty=_("No service yet."),
    )
