"""WSGI entry point (the portal's pages and API; websockets and the endpoint origin need asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

from easyai_site.prepare import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
prepare()  # var/ and the generated secret key, before the settings read them
application = get_wsgi_application()
