from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = _("Pipelines")

    def ready(self) -> None:
        from pipelines import schedule

        # Active runs move on, and due schedules make their runs: the site's clock calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
