from django.urls import path

from accounts import views

urlpatterns = [
    path("accounts/cli/authorize/", views.cli_authorize, name="cli-authorize"),
    path("accounts/profile/ssh-keys/", views.ssh_keys, name="ssh-keys"),
    path("accounts/profile/ssh-keys/<int:key_id>/remove/", views.ssh_key_remove, name="ssh-key-remove"),
]
