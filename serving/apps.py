from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from jobs import readiness
        from serving import schedule
        from serving.runtime import revision_readiness

        # A local revision serves once its model server says it is ready (see jobs/readiness.py).
        readiness.register("serving", revision_readiness)
        # Which revision serves, from what the jobs (locally) or KServe (on Kubernetes) report.
        self.periodic_work = (schedule.enqueue_due,)
