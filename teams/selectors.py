"""Reads about teams."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from teams import quota_usage
from teams.models import Membership, Profile, Team
from teams.permissions import visible_teams
from teams.prepared import PreparedRead, first_of


@PreparedRead
def _current_membership(user_id: int):
    """One query: the membership of the user's chosen team first, else of their first team by slug (read on
    every API request: compiled once per connection, teams.prepared)."""
    chosen = Profile.objects.filter(user_id=user_id, current_team=OuterRef("team"))
    return first_of(
        Membership.objects.filter(user_id=user_id)
        .select_related("team")
        .annotate(chosen=Exists(chosen))
        .order_by("-chosen", "team__slug")
    )


def current_team_for(user) -> Team | None:
    """The user's chosen team if they still belong to it, else their first team."""
    if not user.is_authenticated:
        return None
    if not user.is_staff:
        membership = _current_membership.first(user_id=user.pk)
        return membership.team if membership else None
    # A platform admin may have chosen a team they do not belong to.
    profile = Profile.objects.filter(user=user).select_related("current_team").first()
    if (
        profile
        and profile.current_team
        and (user.is_staff or Membership.objects.filter(user=user, team=profile.current_team).exists())
    ):
        return profile.current_team
    membership = Membership.objects.filter(user=user).select_related("team").order_by("team__slug").first()
    return membership.team if membership else None


def teams_for_header(user) -> list[Team]:
    return list(Team.objects.filter(memberships__user=user).order_by("slug"))


def teams_for_list(user) -> QuerySet[Team]:
    """The teams the user may see, with their member counts, for list pages and the API."""
    return visible_teams(user).annotate(member_count=Count("memberships", distinct=True)).order_by("slug")


def members_of(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def _quota_rows() -> QuerySet:
    # Quotas are the clusters app's (clusters.Quota): reached through the team's reverse relation, so the
    # teams app names no model above it.
    quota = Team._meta.get_field("quotas").related_model
    return quota.objects.select_related("cluster").order_by("cluster__name")


def quotas_of(team: Team) -> QuerySet:
    """The team's quota on each cluster, by cluster name."""
    return _quota_rows().filter(team=team)


def quotas_with_use(team: Team) -> list:
    """The team's quotas, each with ``used``: what its jobs hold on that cluster now (None when nobody tells)."""
    quotas = list(quotas_of(team))
    held = quota_usage.held(team)
    for quota in quotas:
        quota.used = None if held is None else held.get(quota.cluster_id, quota_usage.Held(0, 0, 0))
    return quotas


def memberships_of(user) -> QuerySet[Membership]:
    """The user's memberships with their teams, for the profile page and ``GET /me/``."""
    return Membership.objects.filter(user=user).select_related("team").order_by("team__slug")


def team_with_details(user, team_id: int) -> Team:
    """One team the user may see, with its member count, members and quotas loaded."""
    return (
        teams_for_list(user)
        .prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("user__username")),
            Prefetch("quotas", queryset=_quota_rows()),
        )
        .get(pk=team_id)
    )
