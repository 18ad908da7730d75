from rest_framework.routers import SimpleRouter

from jobs.api import ExperimentViewSet, JobViewSet
from jobs.templates_api import JobTemplateViewSet

router = SimpleRouter()
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("jobs", JobViewSet, basename="api-job")
router.register("templates", JobTemplateViewSet, basename="api-job-template")

urlpatterns = router.urls

# A task's log: pages by byte offset, and the whole file (jobs/logs_api.py).
from django.urls import path  # noqa: E402

from jobs.logs_api import TaskLogDownloadView, TaskLogView  # noqa: E402

urlpatterns += [
    path("jobs/<str:id>/tasks/<str:task>/log/", TaskLogView.as_view(), name="api-task-log"),
    path("jobs/<str:id>/tasks/<str:task>/log/download/", TaskLogDownloadView.as_view(), name="api-task-log-download"),
]
