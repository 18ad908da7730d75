"""Pages: sign-in and sign-up, profile and token, team home and management."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from teams import services
from teams.permissions import visible_teams


@login_required
def home(request):
    team = request.team
    return render(request, "teams/home.html", {"team": team})


@login_required
@require_POST
def team_switch(request):
    slug = request.POST.get("team", "")
    team = visible_teams(request.user).filter(slug=slug).first()
    if team is not None:
        services.profile_set_current_team(user=request.user, team=team)
    next_url = request.POST.get("next") or "/"
    return redirect(next_url if next_url.startswith("/") and not next_url.startswith("//") else "/")
