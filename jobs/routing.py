"""The jobs app's websockets (collected by easyai_site/asgi.py); the wire protocol is in docs/websockets.md."""

from django.urls import path

from jobs.consumers import TaskLogConsumer, TaskShellConsumer, TaskSSHConsumer

websocket_urlpatterns = [
    path("ws/jobs/<str:job_id>/tasks/<str:task>/log/", TaskLogConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/tasks/<str:task>/shell/", TaskShellConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/tasks/<str:task>/ssh/", TaskSSHConsumer.as_asgi()),
]
