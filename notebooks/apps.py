from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "notebooks"

    def ready(self) -> None:
        from jobs import readiness
        from notebooks import schedule
        from notebooks.models import Notebook
        from notebooks.workers import endpoint_readiness
        from teams import sharing

        # A notebook or TensorBoard is opened only once its server answers (see jobs/readiness.py).
        readiness.register("notebook", endpoint_readiness)
        readiness.register("tensorboard", endpoint_readiness)
        # Leases, idle notebooks and TensorBoards: the site's clock (manage.py scheduler) calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
        sharing.register("notebook", Notebook)  # shared one by one, like jobs
