from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path
from django.utils.module_loading import import_string
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


def _authentication_backends() -> list[type]:
    """The configured backends, imported: a misspelt class fails `manage.py check` (and so `serve`), not a sign-in."""
    classes = []
    for dotted in settings.AUTHENTICATION_BACKENDS:
        try:
            classes.append(import_string(dotted))
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"EASYAI_AUTH_BACKENDS (or AUTHENTICATION_BACKENDS in EASYAI_SETTINGS_FILE): {dotted!r} cannot be "
                f"imported: {exc}"
            ) from exc
    return classes


def _uses_oidc(backends: list[type]) -> bool:
    return any(base.__module__.startswith("mozilla_django_oidc.") for backend in backends for base in backend.__mro__)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("easyai_site.api_urls")),
    path("", include("accounts.urls")),  # `easyai login --sso`'s page
    path("", include("teams.urls")),
    path("", include("jobs.urls")),
    path("", include("monitoring.job_urls")),
    path("", include("monitoring.urls")),  # /metrics
    path("", include("monitoring.usage_urls")),  # /usage/
    path("", include("clusters.urls")),
    path("", include("endpoints.urls")),
    path("", include("notebooks.urls")),
    path("", include("serving.urls")),
    path("", include("apps.urls")),
    path("", include("pipelines.urls")),
    path("", include("files.urls")),
    path("", include("assets.image_urls")),  # /images/
]

if _uses_oidc(_authentication_backends()):
    from accounts.views import sign_out

    # mozilla-django-oidc's sign-in, callback (register <site>/oidc/callback/ with the provider) and sign-out,
    # the callback answering an unreachable provider with a clear page (accounts/oidc_urls.py); the portal's
    # sign-out also ends the provider's session when it offers an end-session endpoint.
    urlpatterns[:0] = [
        path("oidc/", include("accounts.oidc_urls")),
        path("accounts/logout/", sign_out, name="logout"),
    ]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
