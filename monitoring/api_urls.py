from django.urls import path

from monitoring.api import UsageTopView, UsageView

urlpatterns = [
    path("usage/", UsageView.as_view(), name="api-usage"),
    path("usage/top/", UsageTopView.as_view(), name="api-usage-top"),
]
