"""Reads of the registry and the services, through the permission module."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery

from serving.models import AliasMove, InferenceService, ModelAlias, ModelVersion, PullToken, RegisteredModel, Revision
from teams import permissions
from teams.models import Membership


def models_visible(user) -> QuerySet[RegisteredModel]:
    queryset = RegisteredModel.objects.select_related("team", "owner").annotate(version_count=Count("versions"))
    return permissions.restrict(queryset, user)


def model_detail(user, team: str, name: str) -> RegisteredModel | None:
    """A model the user may see, with its versions, aliases and their moves read in three queries."""
    return (
        models_visible(user)
        .filter(team__slug=team, name=name)
        .prefetch_related(
            Prefetch("versions", ModelVersion.objects.select_related("registered_by", "source_job").order_by("-number")),
            Prefetch("aliases", ModelAlias.objects.select_related("version").order_by("name")),
            Prefetch("alias_moves", AliasMove.objects.select_related("moved_by").order_by("-moved_at", "-id")),
        )
        .first()
    )


def services_visible(user) -> QuerySet[InferenceService]:
    """With ``alias_version``: the number of the version a service's alias points at now, read with the row."""
    alias_version = ModelAlias.objects.filter(model=OuterRef("model"), name=OuterRef("alias")).values(
        "version__number"
    )[:1]
    queryset = InferenceService.objects.select_related(
        "team", "owner", "cluster", "model", "version", "canary_version",
        "primary__version", "canary__version", "next__version",
    ).annotate(alias_version=Subquery(alias_version))  # fmt: skip
    return permissions.restrict(queryset, user)


def service_detail(user, team: str, name: str) -> InferenceService | None:
    return (
        services_visible(user)
        .filter(team__slug=team, name=name)
        .prefetch_related(
            Prefetch("revisions", Revision.objects.select_related("version", "job").order_by("-number")),
        )
        .first()
    )


def pull_tokens_visible(user) -> QuerySet[PullToken]:
    """The pull tokens of the teams the user administers (all of them for platform admins)."""
    queryset = PullToken.objects.select_related("team", "created_by")
    if permissions.is_platform_admin(user):
        return queryset
    admin_of = Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values("team_id")
    return queryset.filter(team_id__in=admin_of)
