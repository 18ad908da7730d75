"""The pipelines API under /api/v1/."""

from django.urls import path, re_path

from pipelines import api

_PK = "(?P<pk>[1-9][0-9]{0,8})"
_RUN = "(?P<run_id>r-[a-z0-9]{8})"

urlpatterns = [
    path("pipelines/", api.PipelineListView.as_view(), name="api-pipeline-list"),
    path("pipelines/validate/", api.PipelineValidateView.as_view(), name="api-pipeline-validate"),
    re_path(rf"^pipelines/{_PK}/$", api.PipelineDetailView.as_view(), name="api-pipeline-detail"),
    re_path(
        rf"^pipelines/{_PK}/versions/(?P<number>[1-9][0-9]{{0,8}})/$",
        api.VersionDetailView.as_view(),
        name="api-pipeline-version",
    ),
    re_path(rf"^pipelines/{_PK}/runs/$", api.PipelineRunListView.as_view(), name="api-pipeline-runs"),
    re_path(rf"^pipelines/{_PK}/schedules/$", api.ScheduleListView.as_view(), name="api-pipeline-schedules"),
    re_path(rf"^pipeline-runs/{_RUN}/$", api.RunDetailView.as_view(), name="api-pipeline-run"),
    re_path(rf"^pipeline-runs/{_RUN}/stop/$", api.RunStopView.as_view(), name="api-pipeline-run-stop"),
    re_path(rf"^pipeline-runs/{_RUN}/retry/$", api.RunRetryView.as_view(), name="api-pipeline-run-retry"),
    re_path(rf"^pipeline-runs/{_RUN}/rerun-from/$", api.RunRerunFromView.as_view(), name="api-pipeline-run-rerun"),
    re_path(rf"^pipeline-schedules/{_PK}/$", api.ScheduleDetailView.as_view(), name="api-pipeline-schedule"),
    re_path(rf"^pipeline-schedules/{_PK}/backfill/$", api.ScheduleBackfillView.as_view(), name="api-pipeline-backfill"),
]
