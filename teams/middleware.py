"""Puts the user's current team on the request (``request.team``)."""

from django.utils.functional import SimpleLazyObject


def _current_team(request):
    from teams.selectors import current_team_for

    return current_team_for(request.user)


class CurrentTeamMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.team = SimpleLazyObject(lambda: _current_team(request))
        return self.get_response(request)
