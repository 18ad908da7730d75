from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"

    def ready(self) -> None:
        from endpoints.origin import endpoint_url
        from endpoints.paths import endpoint_path
        from jobs import readiness

        # Where a task's named endpoint (a role's service among them) is reached, for the job page and API.
        readiness.register_link(
            lambda job_id, task, name: endpoint_url(job_id, task, name, endpoint_path(job_id, task, name))
        )
