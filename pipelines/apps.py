from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = _("Pipelines")

    def ready(self) -> None:
        from jobs import origins, panels
        from jobs.signals import sync_pass_finished
        from pipelines import links, schedule

        # Active runs move on, and due schedules make their runs: the site's clock calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
        sync_pass_finished.connect(schedule.after_sync_pass, dispatch_uid="pipelines.after_sync_pass")
        # A step's job links back to its run in the jobs lists, and its page says which run and step it is.
        origins.register(links.origins_of)
        panels.register("pipeline", "pipelines/_job_panel.html", links.job_panel)
