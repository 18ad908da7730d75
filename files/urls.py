from django.urls import path

from files import views

urlpatterns = [
    path("files/", views.file_browser, name="file-browser"),
    path("files/download/", views.file_download_view, name="file-download"),
    path("files/upload/", views.file_upload_view, name="file-upload"),
    path("files/folder/", views.folder_create_view, name="file-folder-create"),
    path("files/delete/", views.file_delete_view, name="file-delete"),
    path("jobs/<str:job_id>/outputs/", views.job_outputs, name="job-outputs"),
    path("jobs/<str:job_id>/outputs/download/", views.job_output_download, name="job-output-download"),
]
