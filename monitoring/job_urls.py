from django.urls import path

from monitoring import job_views

urlpatterns = [
    path("jobs/<str:public_id>/usage.json", job_views.job_usage, name="job-usage"),
]
