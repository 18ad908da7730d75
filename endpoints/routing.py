"""The endpoint proxy's routes, collected by easyai_site/asgi.py for requests to the endpoint origin's host.

``endpoint_urlpatterns`` serve HTTP and websockets alike on the endpoint origin only; the portal's origin
answers ``/endpoints/…`` with a redirect there (``endpoints.views.endpoint_redirect``), and closes sockets.
"""

from django.urls import re_path

from endpoints.proxy import ENDPOINT_PATTERN, EndpointProxy

_proxy = EndpointProxy()

endpoint_urlpatterns = [re_path(ENDPOINT_PATTERN, _proxy)]


async def _not_on_the_portal(scope, receive, send) -> None:
    """An endpoint's socket asked of the portal's origin: closed (4404) before it opens."""
    await receive()
    await send({"type": "websocket.close", "code": 4404})


websocket_urlpatterns = [re_path(ENDPOINT_PATTERN, _not_on_the_portal)]
