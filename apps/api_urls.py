from django.urls import path, re_path

from apps import api

_T = "(?P<team>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_N = "(?P<name>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"

urlpatterns = [
    path("apps/", api.AppListView.as_view(), name="api-app-list"),
    re_path(rf"^apps/{_T}/{_N}/$", api.AppDetailView.as_view(), name="api-app-detail"),
    re_path(rf"^apps/{_T}/{_N}/revisions/$", api.RevisionListView.as_view(), name="api-app-revisions"),
    re_path(rf"^apps/{_T}/{_N}/start/$", api.AppStartView.as_view(), name="api-app-start"),
    re_path(rf"^apps/{_T}/{_N}/stop/$", api.AppStopView.as_view(), name="api-app-stop"),
    re_path(rf"^apps/{_T}/{_N}/restart/$", api.AppRestartView.as_view(), name="api-app-restart"),
]
