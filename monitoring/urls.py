"""The monitoring app's routes on the portal's origin: /metrics for Prometheus."""

from django.urls import path

from monitoring.metrics import metrics_view

app_name = "monitoring"

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
