from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs import schedule

        # The site's clock (manage.py scheduler) calls this on every tick.
        self.periodic_work = (schedule.enqueue_due,)
