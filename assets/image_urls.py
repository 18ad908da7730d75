from django.urls import path

from assets import image_views

urlpatterns = [
    path("images/", image_views.image_list, name="image-list"),
    path("images/<int:pk>/delete/", image_views.image_delete, name="image-delete"),
]
