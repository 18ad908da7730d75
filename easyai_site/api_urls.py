"""Everything under /api/v1/: each app contributes its own api_urls module."""

from django.urls import include, path

import easyai_site.schema  # noqa: F401 - registers the schema's extensions before any schema is made

urlpatterns = [
    path("", include("teams.api_urls")),
    path("", include("accounts.api_urls")),
    path("", include("jobs.api_urls")),
    path("", include("clusters.api_urls")),
    path("", include("notebooks.api_urls")),
    path("", include("serving.api_urls")),
    path("", include("apps.api_urls")),
    path("", include("pipelines.api_urls")),
    path("", include("files.api_urls")),
    path("", include("assets.api_urls")),
    path("", include("monitoring.api_urls")),
]
