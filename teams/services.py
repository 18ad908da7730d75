"""Changes to teams, memberships, quotas, profiles and tokens."""

from __future__ import annotations

from django.db import transaction

from teams.models import Profile, Team


@transaction.atomic
def profile_set_current_team(*, user, team: Team) -> None:
    """Remember the team the user works in (the page header's choice and the CLI's default)."""
    Profile.objects.update_or_create(user=user, defaults={"current_team": team})
