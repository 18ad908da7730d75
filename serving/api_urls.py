from django.urls import path, re_path

from serving import api

_T = "(?P<team>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_N = "(?P<name>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_V = "(?P<number>[1-9][0-9]{0,8})"

urlpatterns = [
    path("models/", api.ModelListView.as_view(), name="api-model-list"),
    re_path(rf"^models/{_T}/{_N}/$", api.ModelDetailView.as_view(), name="api-model-detail"),
    re_path(rf"^models/{_T}/{_N}/versions/$", api.VersionListView.as_view(), name="api-version-list"),
    re_path(rf"^models/{_T}/{_N}/versions/{_V}/$", api.VersionDetailView.as_view(), name="api-version-detail"),
    re_path(rf"^models/{_T}/{_N}/versions/{_V}/download/$", api.VersionDownloadView.as_view(), name="api-version-download"),
    re_path(rf"^models/{_T}/{_N}/versions/{_V}/files/(?P<path>.+)$", api.VersionFileView.as_view(), name="api-version-file"),
    re_path(rf"^models/{_T}/{_N}/aliases/(?P<alias>[a-z0-9](?:[-a-z0-9]{{0,61}}[a-z0-9])?)/$", api.AliasView.as_view(), name="api-alias"),
    path("pull-tokens/", api.PullTokenListView.as_view(), name="api-pull-token-list"),
    path("pull-tokens/<int:pk>/revoke/", api.PullTokenRevokeView.as_view(), name="api-pull-token-revoke"),
    path("services/", api.ServiceListView.as_view(), name="api-service-list"),
    re_path(rf"^services/{_T}/{_N}/$", api.ServiceDetailView.as_view(), name="api-service-detail"),
    re_path(rf"^services/{_T}/{_N}/canary/$", api.ServiceCanaryView.as_view(), name="api-service-canary"),
    re_path(rf"^services/{_T}/{_N}/promote/$", api.ServicePromoteView.as_view(), name="api-service-promote"),
    re_path(rf"^services/{_T}/{_N}/rollback/$", api.ServiceRollbackView.as_view(), name="api-service-rollback"),
    re_path(rf"^services/{_T}/{_N}/try/$", api.ServiceTryView.as_view(), name="api-service-try"),
]
