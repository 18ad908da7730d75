"""The pipelines pages."""

from django.urls import path

from pipelines import views

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipeline-list"),
    path("pipelines/new/", views.pipeline_new, name="pipeline-new"),
    path("pipelines/validate.json", views.pipeline_validate, name="pipeline-validate"),
    path("pipelines/<int:pk>/", views.pipeline_detail, name="pipeline-detail"),
    path("pipelines/<int:pk>/edit/", views.pipeline_edit, name="pipeline-edit"),
    path("pipelines/<int:pk>/versions/<int:number>/", views.version_detail, name="pipeline-version"),
    path("pipelines/<int:pk>/run/", views.pipeline_run, name="pipeline-run"),
    path("pipelines/<int:pk>/schedules/", views.schedule_add, name="pipeline-schedule-add"),
    path(
        "pipelines/<int:pk>/schedules/<int:schedule_id>/<str:action>/",
        views.schedule_pause,
        name="pipeline-schedule-pause",
    ),
    path("pipelines/runs/<str:run_id>/", views.run_detail, name="pipeline-run-detail"),
    path("pipelines/runs/<str:run_id>/state.json", views.run_state_json, name="pipeline-run-state"),
    path("pipelines/runs/<str:run_id>/stop/", views.run_stop, name="pipeline-run-stop"),
    path("pipelines/runs/<str:run_id>/retry/", views.run_retry, name="pipeline-run-retry"),
    path("pipelines/runs/<str:run_id>/rerun/", views.run_rerun, name="pipeline-run-rerun"),
]
