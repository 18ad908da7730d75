"""ASGI entry point: pages, API and websockets on one port (served by daphne).

Each app may define in its ``routing.py``:
- ``websocket_urlpatterns``: Channels consumers under ``/ws/``;
- ``http_urlpatterns``: ASGI HTTP apps that must bypass Django's request cycle
  (the endpoint reverse proxy streams bodies).
"""

import importlib
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import re_path  # noqa: E402

from easyai_site.ws_auth import TokenOrSessionAuthMiddlewareStack, token_from_scope  # noqa: E402

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

websocket_app = TokenOrSessionAuthMiddlewareStack(URLRouter(_collect("websocket_urlpatterns")))
browser_websocket_app = AllowedHostsOriginValidator(websocket_app)


async def websocket_entry(scope, receive, send):
    """The Origin check guards cookie sessions against other sites; a token client (the CLI) sends no Origin."""
    if token_from_scope(scope):
        return await websocket_app(scope, receive, send)
    return await browser_websocket_app(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_entry})
