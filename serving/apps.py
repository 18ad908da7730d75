from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from jobs import readiness
        from serving import dashboard, schedule
        from serving.runtime import revision_readiness
        from teams import dashboard as home

        # A local revision serves once its model server says it is ready (see jobs/readiness.py).
        readiness.register("serving", revision_readiness)
        # Which revision serves, from what the jobs (locally) or KServe (on Kubernetes) report.
        self.periodic_work = (schedule.enqueue_due,)

        # The user's services on the home page (teams.dashboard), beside the clusters.
        home.register("services", home.LIST_TEMPLATE, dashboard.my_services, column=home.SIDE)
