"""The apps' proxy route on the endpoint origin, collected by easyai_site/asgi.py (``endpoint_urlpatterns``).

On the portal's own origin ``/apps/…`` are the apps' pages (apps/urls.py); an app itself is only ever served
on the endpoint origin, and its sockets are closed on the portal's.
"""

from django.urls import re_path

from apps.proxy import APP_PATTERN, AppProxy

endpoint_urlpatterns = [re_path(APP_PATTERN, AppProxy())]
