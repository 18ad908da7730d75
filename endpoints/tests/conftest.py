"""The endpoint tests' fixtures: a job on the local cluster (the plugin's local_cluster) that serves a web port."""

import sys
from pathlib import Path

import pytest

from jobs import services as job_services
from jobs import workers as job_workers
from jobs.models import Job
from testing import echo_server
from testing.wait import wait_until

ECHO = echo_server.__file__  # a web app that answers with what it was sent


@pytest.fixture
def web_job(local_cluster, stop_all, owner) -> Job:
    # The task's sandbox shows it the test's web app (the portal's code is hidden from tasks otherwise).
    local_cluster.settings = {**local_cluster.settings, "sandbox_read_only": [str(Path(ECHO).parent)]}
    local_cluster.save(update_fields=["settings"])
    spec = {
        "name": "web",
        "framework": "batch",
        "command": [sys.executable, ECHO],
        "roles": {"main": {"cpu": "250m", "memory": "256Mi"}},
        "ports": {"web": 8080},
    }
    job = job_services.job_submit(user=owner, data=spec)

    def up() -> bool:
        job_workers.cluster_sync(local_cluster)
        return bool(job.tasks.get().endpoints.get("web"))

    wait_until(up, 30, "the web endpoint", every=0.1)
    return job
