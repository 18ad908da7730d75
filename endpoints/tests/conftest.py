"""The endpoint tests' fixtures: a local cluster (the notebooks' tests' own) and a job that serves a web port."""

import sys
from pathlib import Path

import pytest

from jobs import services as job_services
from jobs import workers as job_workers
from jobs.models import Job

# The endpoint tests run jobs on a local cluster, as the notebooks' tests do: the same fixtures.
from notebooks.tests.conftest import _fast_passwords, local_cluster, stop_all  # noqa: F401
from testing.wait import wait_until

ECHO = str(Path(__file__).with_name("echo_server.py"))  # a web app that answers with what it was sent


@pytest.fixture
def web_job(local_cluster, stop_all, owner) -> Job:  # noqa: F811 - the fixtures above
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
