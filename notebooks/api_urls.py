from rest_framework.routers import SimpleRouter

from notebooks.api import NotebookViewSet, TensorBoardViewSet

router = SimpleRouter()
router.register("notebooks", NotebookViewSet, basename="api-notebook")
router.register("tensorboards", TensorBoardViewSet, basename="api-tensorboard")

urlpatterns = router.urls
