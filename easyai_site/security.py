"""The portal's Content-Security-Policy.

Scripts come from the portal's own static files only: no inline script, no inline event handler, no eval
(the templates keep theirs in ``static/easyai/*.js``), so a string that slips into a page as markup still
cannot run. Styles may be inline (xterm.js and Bootstrap set them; a style cannot read cookies). Pages connect
to the portal only (its API and websockets), are framed by nobody, and forms post to the portal, whose
redirects may go on to the endpoint origin (``EASYAI_ENDPOINTS_URL``: opening a TensorBoard posts a form).

HSTS is Django's ``SecurityMiddleware`` (``SECURE_HSTS_SECONDS``, on HTTPS responses: see settings.py).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from endpoints import origin as endpoint_origin

HEADER = "Content-Security-Policy"


def policy(request: HttpRequest) -> str:
    sockets = ""
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host:
        # 'self' covers ws(s): in CSP 3; the explicit source is for browsers that predate it.
        sockets = f" {'wss' if request.is_secure() else 'ws'}://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self'{sockets}",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
            f"form-action 'self' {endpoint_origin.origin().source}",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response of the portal that has not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER in response:
            return response
        if settings.DEBUG and response.status_code >= 500 and "text/html" in response.get("Content-Type", ""):
            return response  # Django's debug page runs inline scripts of its own
        response[HEADER] = policy(request)
        return response
