"""Reads of apps, through the permission module."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.models import App, AppRevision
from teams import permissions


def apps_visible(user) -> QuerySet[App]:
    """The apps whose page the user may see (their team's, a platform admin's all), with their run's task."""
    queryset = (
        App.objects.select_related("team", "owner", "cluster", "job", "revision")
        .prefetch_related("job__tasks")
        .order_by("team__slug", "name")
    )
    return permissions.restrict(queryset, user)


def app_detail(user, team: str, name: str) -> App | None:
    return (
        apps_visible(user)
        .filter(team__slug=team, name=name)
        .prefetch_related(
            Prefetch("revisions", AppRevision.objects.select_related("created_by").order_by("-number")),
            "shared_with",
        )
        .first()
    )
