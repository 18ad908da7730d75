from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "notebooks"

    def ready(self) -> None:
        from endpoints import registry
        from jobs import readiness
        from notebooks import dashboard, endpoint_access, schedule
        from notebooks.models import Notebook
        from notebooks.workers import endpoint_readiness
        from teams import dashboard as home
        from teams import permissions, sharing

        # A notebook or TensorBoard is opened only once its server answers (see jobs/readiness.py).
        readiness.register("notebook", endpoint_readiness)
        readiness.register("tensorboard", endpoint_readiness)
        # Leases, idle notebooks and TensorBoards: the site's clock (manage.py scheduler) calls this every tick.
        self.periodic_work = (schedule.enqueue_due,)
        sharing.register("notebook", Notebook)  # shared one by one, like jobs
        # Who opens a notebook's or TensorBoard's endpoint, and their use, which keeps a TensorBoard alive.
        permissions.register_personal(endpoint_access.is_personal)
        registry.register_access("notebook", endpoint_access.notebook_access)
        registry.register_access("tensorboard", endpoint_access.tensorboard_access)
        registry.endpoint_used.connect(endpoint_access.note_access, dispatch_uid="notebooks.note_access")

        # The user's notebooks on the home page (teams.dashboard), beside the clusters.
        home.register("notebooks", home.LIST_TEMPLATE, dashboard.my_notebooks, column=home.SIDE)
