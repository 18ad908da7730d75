"""The endpoint proxy's routes (collected by easyai_site/asgi.py): HTTP in front of Django, and websockets."""

from django.urls import re_path

from notebooks.proxy import ENDPOINT_PATTERN, EndpointProxy

_proxy = EndpointProxy()

http_urlpatterns = [re_path(ENDPOINT_PATTERN, _proxy)]
websocket_urlpatterns = [re_path(ENDPOINT_PATTERN, _proxy)]
