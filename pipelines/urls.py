"""The pipelines pages."""

urlpatterns: list = []
