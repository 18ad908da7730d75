from django.urls import path, re_path

from serving import views

_T = "(?P<team>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_N = "(?P<name>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/register/", views.model_register, name="model-register"),
    re_path(rf"^models/{_T}/{_N}/$", views.model_detail, name="model-detail"),
    re_path(rf"^models/{_T}/{_N}/alias/$", views.model_alias, name="model-alias"),
    path("services/", views.service_list, name="service-list"),
    re_path(rf"^services/{_T}/{_N}/$", views.service_detail, name="service-detail"),
    re_path(
        rf"^services/{_T}/{_N}/(?P<action>canary|promote|rollback|version|delete)/$",
        views.service_action,
        name="service-action",
    ),
    re_path(rf"^serving/{_T}/{_N}(?P<rest>/.*)?$", views.serving_redirect, name="serving-redirect"),
]
