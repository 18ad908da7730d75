from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "notebooks"

    def ready(self) -> None:
        from jobs import readiness
        from notebooks.workers import endpoint_readiness

        # A notebook or TensorBoard is opened only once its server answers (see jobs/readiness.py).
        readiness.register("notebook", endpoint_readiness)
        readiness.register("tensorboard", endpoint_readiness)
