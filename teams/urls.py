from django.contrib.auth import views as auth_views
from django.urls import path

from teams import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/profile/", views.profile, name="profile"),
    path("accounts/profile/token/", views.token_create, name="token-create"),
    path("accounts/profile/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("teams/", views.team_list, name="team-list"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/switch/", views.team_switch, name="team-switch"),
    path("teams/<str:slug>/", views.team_detail, name="team-detail"),
    path("teams/<str:slug>/settings/", views.team_settings, name="team-settings"),
    path("teams/<str:slug>/members/", views.member_add, name="team-member-add"),
    path("teams/<str:slug>/members/<str:username>/role/", views.member_role, name="team-member-role"),
    path("teams/<str:slug>/members/<str:username>/remove/", views.member_remove, name="team-member-remove"),
]
