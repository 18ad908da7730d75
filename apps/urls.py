from django.urls import path, re_path

from apps import signin, views

# DNS-1123 labels, as an app's address uses them.
_T = "(?P<team>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_N = "(?P<name>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"

urlpatterns = [
    # First: "open" would otherwise read as a team's name below.
    path("apps/open/", signin.app_open, name="app-open"),
    path("apps/", views.app_list, name="app-list"),
    path("apps/new/", views.app_create, name="app-create"),
    re_path(rf"^apps/{_T}/{_N}/$", views.app_detail, name="app-detail"),
    re_path(rf"^apps/{_T}/{_N}/publish/$", views.app_publish, name="app-publish"),
    re_path(rf"^apps/{_T}/{_N}/settings/$", views.app_settings, name="app-settings"),
    re_path(
        rf"^apps/{_T}/{_N}/(?P<action>start|stop|restart|delete)/$",
        views.app_action,
        name="app-action",
    ),
]
