from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/cli-token/", api.CliTokenView.as_view(), name="cli-token"),
]
