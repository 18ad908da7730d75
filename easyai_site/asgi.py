"""ASGI entry point: the portal (pages, API, websockets) and the endpoint origin, told apart by Host.

A request whose host name is the endpoint origin's (``EASYAI_ENDPOINTS_URL``, any port: browsers share
cookies between ports) goes to the endpoint proxy and nowhere else: it never reaches Django or the portal's
session, and the portal's own URLs are not served there (a GET is sent to ``EASYAI_SITE_URL``). Every other
request is the portal's, where ``/endpoints/…`` only redirects to the endpoint origin.

Each app may define in its ``routing.py``:
- ``websocket_urlpatterns``: Channels consumers under ``/ws/`` (the portal's);
- ``http_urlpatterns``: ASGI HTTP apps that must bypass Django's request cycle on the portal;
- ``endpoint_urlpatterns``: ASGI apps (HTTP and websockets) of the endpoint origin.
"""

import importlib
import os
from urllib.parse import quote

import django

from easyai_site.prepare import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
prepare()  # var/ and the generated secret key, before the settings read them
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.urls import re_path  # noqa: E402

from easyai_site.limits import limit_request_body  # noqa: E402
from easyai_site.ws_auth import TokenAuthMiddleware, TokenOrSessionAuthMiddlewareStack, token_from_scope  # noqa: E402
from endpoints import origin as endpoint_origin  # noqa: E402
from endpoints.proxy import AUTHORIZED_FOR_S  # noqa: E402
from monitoring.metrics import socket_closed, socket_opened  # noqa: E402

if endpoint_origin.cookie_domain_problem():  # set in EASYAI_SETTINGS_FILE, perhaps: refused at start
    raise ImproperlyConfigured(endpoint_origin.cookie_domain_problem())

django_app = get_asgi_application()


def _collect(attr: str) -> list:
    patterns = []
    for app in settings.INSTALLED_APPS:
        if "." in app:
            continue
        try:
            module = importlib.import_module(f"{app}.routing")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.routing":
                raise
            continue
        patterns.extend(getattr(module, attr, []))
    return patterns


http_patterns = _collect("http_urlpatterns")
http_app = (
    TokenOrSessionAuthMiddlewareStack(URLRouter([*http_patterns, re_path(r"", django_app)]))
    if http_patterns
    else django_app
)
http_app = limit_request_body(http_app)  # per-route body limits, before a body is read (easyai_site/limits.py)

websocket_app = TokenOrSessionAuthMiddlewareStack(URLRouter(_collect("websocket_urlpatterns")))
browser_websocket_app = AllowedHostsOriginValidator(websocket_app)


async def websocket_entry(scope, receive, send):
    """The Origin check guards cookie sessions against other sites; a token client (the CLI) sends no Origin."""
    if token_from_scope(scope):
        return await websocket_app(scope, receive, send)
    return await browser_websocket_app(scope, receive, send)


async def not_on_endpoint_origin(scope, receive, send):
    """The portal's URLs on the endpoint origin: a GET goes to the portal, anything else is not found."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 4404})
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] in ("GET", "HEAD"):
        query = scope.get("query_string", b"").decode("latin-1")
        path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")  # as sent: no CR/LF
        location = endpoint_origin.portal_url(path + (f"?{query}" if query else ""))
        status, headers = 302, [(b"location", location.encode("latin-1", "replace"))]
    else:
        status, headers = 404, []
    body = b"The portal is not served here.\n"
    headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


def header_token_only(inner):
    """An API token counts on the endpoint origin in the Authorization header only: a ?token= in a link would
    sign a browser in as the link's author (it is still kept from the upstream, see endpoints/proxy.py)."""

    async def app(scope, receive, send):
        query = scope.get("query_string", b"")
        if b"token=" in query:
            kept = [part for part in query.split(b"&") if part.split(b"=", 1)[0] != b"token"]
            return await inner(dict(scope, query_string=b"&".join(kept)), receive, send)
        return await inner(scope, receive, send)

    return app


endpoint_app = header_token_only(
    TokenAuthMiddleware(
        URLRouter([*_collect("endpoint_urlpatterns"), re_path(r"", not_on_endpoint_origin)]),
        reuse_for=AUTHORIZED_FOR_S,  # as the proxy reuses its permission answers
    )
)


def _host(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return value.decode("latin-1")
    return ""


async def http_entry(scope, receive, send):
    if endpoint_origin.serves(_host(scope)):
        return await endpoint_app(scope, receive, send)
    return await http_app(scope, receive, send)


def _origin_host(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1").partition("://")[2]
    return ""


async def socket_entry(scope, receive, send):
    """Every websocket, counted while it lasts (monitoring's ``easyai_websockets_open``)."""
    origin = "endpoints" if endpoint_origin.serves(_host(scope)) else "portal"
    socket_opened(origin)
    try:
        return await _socket_entry(scope, receive, send)
    finally:
        socket_closed(origin)


async def _socket_entry(scope, receive, send):
    if endpoint_origin.serves(_host(scope)):
        return await endpoint_app(scope, receive, send)
    if endpoint_origin.serves(_origin_host(scope)):
        # A page an endpoint serves never opens the portal's sockets, whatever ALLOWED_HOSTS lists.
        await receive()
        await send({"type": "websocket.close", "code": 4403})
        return
    return await websocket_entry(scope, receive, send)


application = ProtocolTypeRouter({"http": http_entry, "websocket": socket_entry})
