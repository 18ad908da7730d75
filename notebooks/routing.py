"""The endpoint proxy's routes, collected by easyai_site/asgi.py for requests to the endpoint origin's host.

``endpoint_urlpatterns`` serve HTTP and websockets alike on the endpoint origin only; the portal's origin
answers ``/endpoints/…`` with a redirect there (``notebooks.views.endpoint_redirect``).
"""

from django.urls import re_path

from notebooks.proxy import ENDPOINT_PATTERN, EndpointProxy

_proxy = EndpointProxy()

endpoint_urlpatterns = [re_path(ENDPOINT_PATTERN, _proxy)]
