"""Helpers of the clusters tests: jobs described as the jobs app would, on a local backend with real processes."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.base import JobDescription, JobObservation, ObservedState, TaskDescription
from clusters.backends.contract import storage
from clusters.backends.local import LocalBackend
from clusters.models import Cluster

FINAL = (ObservedState.SUCCEEDED, ObservedState.FAILED, ObservedState.STOPPED)

# A task that waits until the test lets it go (a file named "go" in the job's share_dir), then ends well.
GATED = 'while [ ! -e "$share_dir/go" ]; do sleep 0.02; done'


def cluster(**overrides) -> Cluster:
    """An unsaved cluster row: the backend reads only its name and settings."""
    return Cluster(name="local-test", kind="local", settings={"cpu": 2, "memory": "4Gi", "stop_grace": 1, **overrides})


def root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def make_job(
    roles: list[tuple[str, int, str | list[str]]],
    *,
    framework: str = "batch",
    priority: str = "normal",
    cpu_milli: int = 1000,
    gpu: int = 0,
    oversell: float = 1.0,
    owner: str = "alice",
    created_at: datetime | None = None,
    job_id: str | None = None,
) -> JobDescription:
    """A job as the jobs app would describe it for a local cluster: storage variables hold real paths."""
    job_id = job_id or f"j-{uuid.uuid4().hex[:8]}"
    tasks = []
    for role, replicas, command in roles:
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        for index in range(replicas):
            name = f"{role}-{index}"
            paths = storage.local_env(root(), job_id, name, owner)
            tasks.append(
                TaskDescription(
                    role=role,
                    index=index,
                    replicas=replicas,
                    name=name,
                    image="",
                    command=argv,
                    working_dir=str(storage.personal_workspace(root(), owner)),
                    env={"GREETING": "hello", **paths},
                    cpu_milli=cpu_milli,
                    memory_bytes=256 * 2**20,
                    gpu=gpu,
                    storage=dict(paths),
                    log_path=str(storage.task_log_path(root(), job_id, name)),
                    places=storage.places(job_id, name, owner),
                )
            )
    return JobDescription(
        job_id=job_id,
        name="test",
        team="vision",
        owner=owner,
        framework=framework,
        priority=priority,
        tasks=tasks,
        oversell=oversell,
        created_at=created_at or datetime.now(UTC),
    )


def wait_for(backend: LocalBackend, job_id: str, states=FINAL, timeout: float = 15.0) -> JobObservation:
    deadline = time.monotonic() + timeout
    while True:
        obs = backend.observe([job_id])[job_id]
        if obs.state in states:
            return obs
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_id} still {obs.state} ({obs.reason}: {obs.message}) after {timeout}s")
        time.sleep(0.02)


def release(job: JobDescription) -> None:
    share = storage.output_dir(root(), job.job_id, "share_dir")
    share.mkdir(parents=True, exist_ok=True)  # a job still waiting has none yet
    (share / "go").touch()


def log_of(job: JobDescription, task: str) -> str:
    return storage.task_log_path(root(), job.job_id, task).read_text()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie has ended too; only init (which may not reap here) still holds its pid.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def task_pid(obs: JobObservation, index: int = 0) -> int:
    return int(obs.tasks[index].pod_name.split()[1])


def running_pid(backend: LocalBackend, job_id: str, index: int = 0) -> int:
    """The pid of a running task, once its supervisor has started it."""
    deadline = time.monotonic() + 10
    while True:
        obs = backend.observe([job_id])[job_id]
        if obs.state == ObservedState.RUNNING and obs.tasks[index].pod_name:
            return task_pid(obs, index)
        assert time.monotonic() < deadline, obs
        time.sleep(0.02)


@pytest.fixture
def local():
    """local(**settings) -> a LocalBackend; every job left behind is killed and forgotten afterwards."""
    made: list[LocalBackend] = []

    def make(**overrides) -> LocalBackend:
        backend = LocalBackend(cluster(**overrides))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        jobs_dir = backend.state_dir / "jobs"
        for path in jobs_dir.glob("*.json") if jobs_dir.is_dir() else []:
            backend.delete(path.stem)
