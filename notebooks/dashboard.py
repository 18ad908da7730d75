"""The user's notebooks on the home page (teams.dashboard): a list panel, newest first."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from notebooks.models import NotebookState
from notebooks.selectors import notebooks_visible
from teams import dashboard
from teams.models import Team

SHOWN = 5


def my_notebooks(request: HttpRequest, team: Team) -> dict[str, Any]:
    """The user's own notebooks in the team (two queries: the notebooks with their jobs, their tasks)."""
    notebooks = notebooks_visible(request.user).filter(team=team, owner=request.user)[:SHOWN]
    url = reverse("notebook-list")
    return dashboard.list_panel(
        title=_("Your notebooks"),
        items=[
            dashboard.Item(
                name=notebook.name,
                url=f"{url}#notebook-{notebook.pk}",
                state_label=notebook.get_state_display(),
                good=notebook.state == NotebookState.RUNNING,
                detail=notebook.get_kind_display(),
            )
            for notebook in notebooks
        ],
        more_url=url,
        more_label=_("All notebooks"),
        empty=_("No notebook yet."),
    )
