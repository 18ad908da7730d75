from django.urls import path

from teams import api, sharing_api

urlpatterns = [
    path("auth/token/", api.TokenExchangeView.as_view(), name="api-auth-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("shares/", sharing_api.ShareView.as_view(), name="api-shares"),
    path("teams/", api.TeamListView.as_view(), name="api-team-list"),
    path("teams/<str:slug>/", api.TeamDetailView.as_view(), name="api-team-detail"),
    path("teams/<str:slug>/members/", api.TeamMemberListView.as_view(), name="api-team-members"),
    path("teams/<str:slug>/members/<str:username>/", api.TeamMemberDetailView.as_view(), name="api-team-member"),
]
