"""Reads about notebooks and TensorBoards, always through the permission module."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from jobs.models import Task
from notebooks.models import Notebook, TensorBoard
from teams import permissions
from teams.permissions import Action

_TASKS = Prefetch("job__tasks", queryset=Task.objects.order_by("role", "index"))


def notebooks_visible(user) -> QuerySet[Notebook]:
    """Notebooks the user may see: their team's (a team-mate sees them listed, but cannot open them)."""
    queryset = Notebook.objects.select_related("team", "owner", "cluster", "job").prefetch_related(_TASKS)
    return permissions.restrict(queryset, user)


def tensorboards_visible(user) -> QuerySet[TensorBoard]:
    queryset = TensorBoard.objects.filter(job__deleted=False).select_related("team", "owner", "job")
    return permissions.restrict(queryset, user).prefetch_related("sources", _TASKS)


def can_open_notebook(user, notebook: Notebook) -> bool:
    """A notebook is personal: only its owner reaches it (not team admins, not platform admins)."""
    return permissions.can(user, notebook, Action.OPEN)


def can_manage_notebook(user, notebook: Notebook) -> bool:
    """Stop, renew, delete, start: the owner or a team admin (platform admins too)."""
    return permissions.can(user, notebook, Action.CHANGE)
