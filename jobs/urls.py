from django.urls import path

from jobs import template_views, views

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment-list"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment-detail"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/states/", views.job_states, name="job-states"),
    path("jobs/new/", views.job_submit, name="job-submit"),
    path("jobs/new/form-to-yaml/", views.spec_form_to_yaml, name="job-spec-form-to-yaml"),
    path("jobs/new/yaml-to-form/", views.spec_yaml_to_form, name="job-spec-yaml-to-form"),
    path("jobs/templates/", template_views.template_list, name="job-template-list"),
    path("jobs/templates/<int:pk>/delete/", template_views.template_delete, name="job-template-delete"),
    path("jobs/<str:public_id>/save-as-template/", template_views.template_save, name="job-template-save"),
    path("jobs/<str:public_id>/", views.job_detail, name="job-detail"),
    path("jobs/<str:public_id>/stop/", views.job_stop, name="job-stop"),
    path("jobs/<str:public_id>/rerun/", views.job_rerun, name="job-rerun"),
    path("jobs/<str:public_id>/delete/", views.job_delete, name="job-delete"),
    path("jobs/<str:public_id>/release/", views.job_release, name="job-release"),
]
