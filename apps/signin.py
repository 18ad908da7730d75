"""``/apps/open/`` on the portal: where the endpoint origin sends a browser that wants an app and holds no
credential for it. The portal signs it in if need be, asks the permission module, and sends it back to the
app with a ticket for that one app and the state the browser keeps (``endpoints/origin.py``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext as _

from apps.models import App, app_origin
from endpoints import origin as endpoint_origin
from teams import permissions

_NEXT = re.compile(r"^/apps/(?P<team>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(/[^\s]*)?$")


def app_open(request: HttpRequest) -> HttpResponse:
    """Sign the browser in to one app: back to ``next`` (a path under the app) with a ticket."""
    wanted = request.GET.get("next", "")
    parts = urlsplit(wanted)
    match = _NEXT.match(parts.path) if not parts.scheme and not parts.netloc else None
    if match is None:
        raise Http404(_("No such app."))
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    team, name = match["team"], match["name"]
    app = App.objects.filter(team__slug=team, name=name).select_related("team").first()
    if app is None or not permissions.can(request.user, app, permissions.Action.OPEN):
        raise Http404(_("No such app."))
    path, _sep, query = wanted.partition("?")
    query = endpoint_origin.without_ticket(query)
    target = app_origin(team, name) + path + (f"?{query}" if query else "")
    state = endpoint_origin.state_in(request.META.get("QUERY_STRING", ""))
    if not state:  # the endpoint origin gives the browser a state first, and sends it back here with it
        return HttpResponseRedirect(target)
    ticket = endpoint_origin.ticket_for_key(request.user, f"apps/{team}/{name}", state)
    response = HttpResponseRedirect(endpoint_origin.with_ticket(target, ticket))
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
