from django.urls import path

from accounts import views

urlpatterns = [
    path("accounts/cli/authorize/", views.cli_authorize, name="cli-authorize"),
]
