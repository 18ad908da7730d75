"""Reads about teams."""

from __future__ import annotations

from teams.models import Membership, Profile, Team


def current_team_for(user) -> Team | None:
    """The user's chosen team if they still belong to it, else their first team."""
    if not user.is_authenticated:
        return None
    profile = Profile.objects.filter(user=user).select_related("current_team").first()
    if profile and profile.current_team and (
        user.is_staff or Membership.objects.filter(user=user, team=profile.current_team).exists()
    ):
        return profile.current_team
    membership = Membership.objects.filter(user=user).select_related("team").order_by("team__slug").first()
    return membership.team if membership else None


def teams_for_header(user) -> list[Team]:
    return list(Team.objects.filter(memberships__user=user).order_by("slug"))


def members_of(team: Team):
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")
