"""What the job page shows of a job's endpoints (the job page's view stays the jobs app's)."""

from __future__ import annotations

from django import template

from endpoints.origin import endpoint_url
from endpoints.paths import endpoint_path
from jobs.models import Job, Task
from teams import permissions

register = template.Library()


@register.simple_tag(takes_context=True)
def job_endpoints(context, job: Job, tasks: list[Task]) -> list[dict[str, str]]:
    """The job's web endpoints: each declared port of each task, with its URL on the endpoint origin.

    A personal job's endpoints (a notebook's) are listed for its owner only, the one person its proxy lets through.
    """
    ports = job.spec.get("ports") or {}
    if not ports:
        return []
    request = context.get("request")
    user = getattr(request, "user", None)
    if permissions.is_personal(job) and not permissions.can(user, job, permissions.Action.OPEN):
        return []
    result = []
    for task in tasks:
        for name in ports:
            up = job.state == "running" and task.state == Task.State.RUNNING and bool((task.endpoints or {}).get(name))
            path = endpoint_path(job.public_id, task.name, name)
            url = endpoint_url(job.public_id, task.name, name, path)
            result.append({"task": task.name, "name": name, "path": path, "url": url, "up": up})
    return result
