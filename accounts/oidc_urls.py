"""mozilla-django-oidc's routes under /oidc/, with the portal's callback (accounts.oidc.CallbackView); included
by easyai_site/urls.py only when an OIDC backend is configured."""

from django.urls import path
from mozilla_django_oidc import views as oidc_views

from accounts.oidc import CallbackView

urlpatterns = [
    path("callback/", CallbackView.as_view(), name="oidc_authentication_callback"),
    path("authenticate/", oidc_views.OIDCAuthenticationRequestView.as_view(), name="oidc_authentication_init"),
    path("logout/", oidc_views.OIDCLogoutView.as_view(), name="oidc_logout"),
]
