from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Files"

    def ready(self) -> None:
        from files import schedule

        # Resumable uploads past their expiry: the site's clock (manage.py scheduler) calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
