from django.urls import path

from notebooks import views

urlpatterns = [
    path("notebooks/", views.notebook_list, name="notebook-list"),
    path("notebooks/<int:pk>/open/", views.notebook_open, name="notebook-open"),
    path("notebooks/<int:pk>/stop/", views.notebook_stop, name="notebook-stop"),
    path("notebooks/<int:pk>/start/", views.notebook_start, name="notebook-start"),
    path("notebooks/<int:pk>/renew/", views.notebook_renew, name="notebook-renew"),
    path("notebooks/<int:pk>/delete/", views.notebook_delete, name="notebook-delete"),
    path("tensorboards/", views.tensorboard_list, name="tensorboard-list"),
    path("tensorboards/open/", views.tensorboard_open, name="tensorboard-open-jobs"),
    path("tensorboards/<int:pk>/open/", views.tensorboard_wait, name="tensorboard-open"),
]
