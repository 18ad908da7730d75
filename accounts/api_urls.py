from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/cli-token/", api.CliTokenView.as_view(), name="cli-token"),
    path("ssh-keys/", api.SSHKeyListView.as_view(), name="api-ssh-keys"),
    path("ssh-keys/<int:id>/", api.SSHKeyDetailView.as_view(), name="api-ssh-key"),
]
