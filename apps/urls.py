from django.urls import path

from apps import signin

urlpatterns = [
    path("apps/open/", signin.app_open, name="app-open"),
]
