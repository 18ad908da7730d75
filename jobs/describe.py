"""Turn a recorded job into the plain, fully resolved description a backend receives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import storage
from jobs import datasets as job_datasets
from jobs import spec as job_spec
from jobs.models import Job, Volume
from jobs.spec import toolbox

# framework -> source(job) of environment variables a job's tasks get but its spec does not show (an app's
# secrets): registered by the app that submits such jobs, in its AppConfig.ready(); read when the job is
# described for its backend, never stored in the spec.
EnvSource = Callable[[Job], dict[str, str]]
_env_sources: dict[str, EnvSource] = {}


def register_env(framework: str, source: EnvSource) -> None:
    _env_sources[framework] = source


def _task_names(roles: dict[str, dict]) -> list[tuple[str, int, int]]:
    return [(role, index, res["replicas"]) for role, res in roles.items() for index in range(res["replicas"])]


def _services(role: dict) -> list[dict]:
    """A role's services as the task wrapper runs them: the command as text for sh, health "" when none."""
    return [
        {
            "name": s["name"],
            "command": toolbox.command_text(s["command"]),
            "port": s["port"],
            "health": s.get("health", ""),
        }
        for s in role.get("services") or []
    ]


def describe(job: Job, *, volumes: list[Volume] | None = None) -> JobDescription:
    """The job as its backend sees it: tasks with commands, resources, environment and storage."""
    spec = job.spec
    local = job.cluster.kind == "local"
    root = settings.EASYAI_STORAGE_ROOT
    owner = job.owner.username
    pre_job_id = job.pre_job.public_id if job.pre_job_id else None
    named = {
        "team": job.team.slug,
        "registered_model": spec.get("registered_model"),
        "app_source": spec.get("app_source"),
        "inputs": spec.get("inputs"),
        "datasets": job_datasets.mounts(job.team.slug, spec.get("datasets")),
    }
    roles = job_spec.role_resources(spec)
    hidden = _env_sources[job.framework](job) if job.framework in _env_sources else {}
    hold_mode, hold_seconds = toolbox.hold_of(spec)
    tasks: list[TaskDescription] = []
    for role, index, replicas in _task_names(roles):
        res = roles[role]
        name = f"{role}-{index}"
        places = storage.places(job.public_id, name, owner, pre_job_id, **named)
        if local:
            paths = storage.local_env(root, job.public_id, name, owner, pre_job_id, **named)
            storage_map = dict(paths)
            workspace = str(storage.personal_workspace(root, owner))
        else:
            paths = storage.container_env(job.public_id, name, owner, pre_job_id, **named)
            prefix = job.cluster.nfs_path or ""
            storage_map = {p.variable or p.container_path: storage.nfs_subpath(prefix, p) for p in places}
            workspace = "/workspace/personal"
        env = {**res["env"], **hidden, **paths}
        if local:
            env.update({v.env_name: v.host_path for v in volumes or [] if v.host_path})
        services = _services(spec["roles"][role])
        tasks.append(
            TaskDescription(
                role=role,
                index=index,
                replicas=replicas,
                name=name,
                image=res["image"],
                command=res["command"],
                working_dir=spec.get("working_dir") or workspace,
                env=env,
                cpu_milli=res["cpu_milli"],
                memory_bytes=res["memory_bytes"],
                gpu=res["gpu"],
                storage=storage_map,
                # A service's port is one of the task's named ports: the proxy and placement treat it as such.
                ports={**(spec.get("ports") or {}), **{s["name"]: s["port"] for s in services}},
                log_path=str(storage.task_log_path(Path(root), job.public_id, name)),
                places=places,
                services=services,
                hold_mode=hold_mode,
                hold_seconds=hold_seconds,
            )
        )
    scheduling = spec.get("scheduling") or {}
    return JobDescription(
        job_id=job.public_id,
        name=job.name,
        team=job.team.slug,
        owner=owner,
        framework=job.framework,
        priority=job.priority,
        tasks=tasks,
        gang=scheduling.get("gang", True),
        oversell=float(scheduling.get("oversell", 1)),
        node_selector=dict(scheduling.get("node_selector") or {}),
        tolerations=list(scheduling.get("tolerations") or []),
        queue=scheduling.get("queue") or "",
        volumes=[v.as_dict() for v in (volumes or [])],
        created_at=job.created_at,
        spec=spec,
    )
