from django.apps import AppConfig


class EasyAISiteConfig(AppConfig):
    name = "easyai_site"
    verbose_name = "EasyAI site"
