from django.contrib.auth import views as auth_views
from django.urls import path

from teams import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("teams/switch/", views.team_switch, name="team-switch"),
]
