"""How to reach a job's tasks over SSH, for the job page's partial (``jobs/_ssh_connect.html``) and for the API.

``ssh_info(job, user)`` says it as plain data: whether the user may open SSH connections in the job (the web
shell's permission: the owner, the team's admins, platform admins), whether they have a key, and for each task
they may reach now (running, or held for debugging after its command failed) the ``easyai ssh`` line and the
name ``easyai ssh-config`` makes work with plain ``ssh``, ``scp``, ``rsync`` and VS Code's Remote-SSH.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from accounts.selectors import ssh_keys_of
from jobs.models import Job, Task
from teams.permissions import Action, can

CONFIG_COMMAND = "easyai ssh-config --write"


def reachable_tasks(job: Job) -> list[Task]:
    """The job's tasks an SSH connection may open in now: running ones, and failed ones while the job holds."""
    states = {Task.State.RUNNING, Task.State.FAILED} if job.is_held else {Task.State.RUNNING}
    if job.is_final and not job.is_held:
        return []
    return list(job.tasks.filter(state__in=states).order_by("role", "index"))


def ssh_info(job: Job, user: Any) -> dict[str, Any]:
    """How the user can SSH into the job's tasks, as plain data (the API and the job page say the same)."""
    allowed = bool(user is not None and getattr(user, "is_authenticated", False) and can(user, job, Action.CHANGE))
    tasks = []
    if allowed:
        for task in reachable_tasks(job):
            host = f"{job.public_id}.{task.name}"
            tasks.append(
                {
                    "task": task.name,
                    "host": host,
                    "command": f"easyai ssh {job.public_id}/{task.name}",
                    "ssh_command": f"ssh {host}",
                    "socket": f"/ws/jobs/{job.public_id}/tasks/{task.name}/ssh/",
                }
            )
    return {
        "allowed": allowed,
        "has_keys": allowed and ssh_keys_of(user).exists(),
        "keys_url": reverse("ssh-keys"),
        "config_command": CONFIG_COMMAND,
        "held": job.is_held,
        "tasks": tasks,
    }


def ssh_connect_context(request: HttpRequest, job: Job) -> dict[str, Any] | None:
    """The context of ``jobs/_ssh_connect.html`` (as ``ssh``), or None when the viewer may not SSH into the job
    or no task can take a connection now (the partial then shows nothing)."""
    info = ssh_info(job, request.user)
    if not info["allowed"] or not info["tasks"]:
        return None
    return {"ssh": info}
