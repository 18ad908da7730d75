"""Where the portal serves a task's named endpoint."""

ENDPOINT_PREFIX = "/endpoints/"


def endpoint_path(job_id: str, task: str, name: str) -> str:
    """Where the portal serves a task's named endpoint: ``/endpoints/{job}/{task}/{name}/``."""
    return f"{ENDPOINT_PREFIX}{job_id}/{task}/{name}/"
