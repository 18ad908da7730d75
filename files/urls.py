from django.urls import path

from files import datasets_views, views

urlpatterns = [
    path("files/", views.file_browser, name="file-browser"),
    path("files/download/", views.file_download_view, name="file-download"),
    path("files/upload/", views.file_upload_view, name="file-upload"),
    path("files/folder/", views.folder_create_view, name="file-folder-create"),
    path("files/delete/", views.file_delete_view, name="file-delete"),
    path("jobs/<str:job_id>/outputs/", views.job_outputs, name="job-outputs"),
    path("jobs/<str:job_id>/outputs/download/", views.job_output_download, name="job-output-download"),
    path("datasets/", datasets_views.dataset_list, name="dataset-list"),
    path("datasets/new/", datasets_views.dataset_create, name="dataset-create"),
    path("datasets/<slug:team>/<slug:name>/", datasets_views.dataset_detail, name="dataset-detail"),
    path(
        "datasets/<slug:team>/<slug:name>/<int:version>/delete/",
        datasets_views.dataset_version_delete,
        name="dataset-version-delete",
    ),
]
