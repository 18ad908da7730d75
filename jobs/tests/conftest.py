from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs import services
from jobs.models import Job

# A task that runs until the test lets it go (a file named "go" in the job's share_dir).
GATED = 'while [ ! -e "$share_dir/go" ]; do sleep 0.05; done'


@pytest.fixture
def spec_doc():
    """A small valid spec; tests change what they need."""

    def make(**changes):
        doc = {
            "name": "resnet",
            "framework": "pytorch",
            "image": "pytorch/pytorch:2.3",
            "command": "python train.py",
            "roles": {
                "master": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
                "worker": {"replicas": 2, "cpu": "500m", "memory": "1Gi"},
            },
        }
        doc.update(changes)
        return doc

    return make


@pytest.fixture
def submit(django_capture_on_commit_callbacks, spec_doc):
    """submit(user, **spec changes) -> Job, with its after-commit work (the submit worker) run."""

    def run(user, **changes):
        with django_capture_on_commit_callbacks(execute=True):
            return services.job_submit(user=user, data=spec_doc(**changes))

    return run


# --- real jobs on the local backend, for the log and shell socket tests ----------------------------------


@pytest.fixture
def local_cluster(transactional_db) -> Cluster:
    """The jobs tests' own local cluster (in place of the plugin's): a shorter stop grace, no home of its own."""
    return Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "4Gi", "stop_grace": 1}
    )


@pytest.fixture
def run_job(local_cluster, tmp_path):
    """run_job(user, command, **spec) -> a job started on the local backend; stopped again after the test."""
    started: list[Job] = []

    def run(user, command: str, **spec: Any) -> Job:
        doc = {
            "name": "streams",
            "framework": "batch",
            "command": command,
            "roles": {"main": {"replicas": 1, "cpu": "250m", "memory": "128Mi"}},
            # A home of its own: a shell sources $HOME/.bashrc, and this machine's may do slow things.
            "env": {"HOME": str(tmp_path / "home")},
            **spec,
        }
        job = services.job_submit(user=user, data=doc)  # a transactional test: the submit worker runs at commit
        started.append(job)
        return job

    yield run
    backend = local_cluster.backend()
    for job in started:
        backend.stop(job.public_id)


def log_path(job: Job, task: str) -> Path:
    """Where the task's log is on the storage root."""
    return storage.task_log_path(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, task)
