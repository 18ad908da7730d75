from django.urls import path

from monitoring import usage_views

urlpatterns = [
    path("usage/", usage_views.usage_page, name="usage"),
]
