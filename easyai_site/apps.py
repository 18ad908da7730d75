from django.apps import AppConfig


class EasyAISiteConfig(AppConfig):
    name = "easyai_site"
    verbose_name = "EasyAI site"

    def ready(self) -> None:
        from easyai_site import (
            checks,  # noqa: F401 - registers the site's system checks
            wiring,
        )

        wiring.connect()  # pipelines' register_model steps call the model registry
