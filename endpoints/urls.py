from django.urls import re_path

from endpoints import views
from endpoints.proxy import ENDPOINT_PATTERN

urlpatterns = [
    # Endpoints are served on their own origin; here they only redirect there (endpoints/origin.py).
    re_path(ENDPOINT_PATTERN, views.endpoint_redirect, name="endpoint-redirect"),
]
