"""The portal's ``/endpoints/…`` paths: they only send the browser to the endpoint origin (endpoints/origin.py)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.encoding import escape_uri_path
from django.views.decorators.csrf import csrf_exempt

from endpoints import origin as endpoint_origin
from endpoints.proxy import Refused, authorize


class _PermanentRedirect(HttpResponseRedirect):
    status_code = 308  # the method and body go along, unlike 301


@csrf_exempt  # it changes nothing: every method is only sent on
def endpoint_redirect(request: HttpRequest, job_id: str, task: str, name: str, rest: str | None = None) -> HttpResponse:
    """``/endpoints/…`` on the portal: to the endpoint origin, with a ticket for a signed-in browser that may open it.

    The portal's origin never serves an endpoint (its pages could read the portal's cookies). Links keep
    working: a browser's GET is checked by the permission module here and sent on; when the endpoint origin
    sent it here with its state, with a ticket for that one endpoint and that state (see
    ``endpoints/origin.py``). Other methods and token clients are sent on as they are (308).
    """
    raw_query = request.META.get("QUERY_STRING", "")
    query = endpoint_origin.without_ticket(raw_query)
    path = escape_uri_path(request.path)
    target = endpoint_origin.endpoint_url(job_id, task, name, path + (f"?{query}" if query else ""))
    if request.method not in ("GET", "HEAD") or "HTTP_AUTHORIZATION" in request.META:
        return _PermanentRedirect(target)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        authorize(request.user, job_id, task, name)
    except Refused as refused:
        if refused.status == 404:
            raise Http404(refused.message) from None
        if refused.status == 403:
            raise PermissionDenied(refused.message) from None
        if refused.status != 503:  # starting: the endpoint origin says so, and reloads until it answers
            return HttpResponse(refused.message, status=refused.status, content_type="text/plain; charset=utf-8")
    state = endpoint_origin.state_in(raw_query)
    if not state:  # the endpoint origin gives the browser a state first, and sends it back here with it
        return HttpResponseRedirect(target)
    response = HttpResponseRedirect(
        endpoint_origin.with_ticket(target, endpoint_origin.ticket_issue(request.user, job_id, task, name, state))
    )
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
