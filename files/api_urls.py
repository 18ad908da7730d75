"""Files API routes under /api/v1/ (the jobs router claims only jobs/<id>/ and its actions, not outputs/).

One route per resource, with a path that may be empty (the workspace or the
list of outputs), so each operation appears once in the API schema. Datasets: a list, one, one version.
"""

from django.urls import include, path, re_path

from files.api import JobOutputsView, WorkspaceFilesView
from files.datasets_api import DatasetDetailView, DatasetListView, DatasetVersionView

_T = "(?P<team>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"
_N = "(?P<name>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)"

urlpatterns = [
    re_path(r"^files/(?P<space>[^/]+)/(?P<path>.*)$", WorkspaceFilesView.as_view(), name="api-files"),
    re_path(r"^jobs/(?P<job_id>[^/]+)/outputs/(?P<path>.*)$", JobOutputsView.as_view(), name="api-job-output"),
    path("", include("files.uploads_api")),  # uploads/: resumable uploads of large files
    path("datasets/", DatasetListView.as_view(), name="api-dataset-list"),
    re_path(rf"^datasets/{_T}/{_N}/$", DatasetDetailView.as_view(), name="api-dataset-detail"),
    re_path(
        rf"^datasets/{_T}/{_N}/versions/(?P<version>[1-9][0-9]{{0,8}})/$",
        DatasetVersionView.as_view(),
        name="api-dataset-version",
    ),  # fmt: skip
]
