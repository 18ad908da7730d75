"""Files API routes under /api/v1/ (the jobs router claims only jobs/<id>/ and its actions, not outputs/).

One route per resource, with a path that may be empty (the workspace or the
list of outputs), so each operation appears once in the API schema.
"""

from django.urls import include, path, re_path

from files.api import JobOutputsView, WorkspaceFilesView

urlpatterns = [
    re_path(r"^files/(?P<space>[^/]+)/(?P<path>.*)$", WorkspaceFilesView.as_view(), name="api-files"),
    re_path(r"^jobs/(?P<job_id>[^/]+)/outputs/(?P<path>.*)$", JobOutputsView.as_view(), name="api-job-output"),
    path("", include("files.uploads_api")),  # uploads/: resumable uploads of large files
]
