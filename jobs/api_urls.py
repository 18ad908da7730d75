from rest_framework.routers import SimpleRouter

from jobs.api import ExperimentViewSet, JobViewSet

router = SimpleRouter()
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("jobs", JobViewSet, basename="api-job")

urlpatterns = router.urls
