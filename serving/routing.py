"""The serving proxy's route on the endpoint origin, collected by easyai_site/asgi.py (``endpoint_urlpatterns``).

The portal's own origin answers ``/serving/…`` from ``serving/urls.py`` (a redirect for a GET, else 404 that
names the right URL): model calls never ride on the portal's session.
"""

from django.urls import re_path

from serving.proxy import SERVING_PATTERN, ServingProxy

endpoint_urlpatterns = [re_path(SERVING_PATTERN, ServingProxy())]
