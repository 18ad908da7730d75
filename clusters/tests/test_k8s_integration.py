"""Against a real cluster: runs only when EASYAI_TEST_KUBECONFIG names a kubeconfig file.

It creates a namespace "easyai-it-<random>" and one plain pod (busybox), and
removes the pod again; the namespace is deleted at the end.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from clusters.backends.base import ObservedState
from clusters.backends.kubernetes import KubernetesBackend
from clusters.backends.kubernetes.health import check_connection
from clusters.models import Cluster
from clusters.services import team_provision
from teams.models import Team
from testing.fakekube import make_job

KUBECONFIG = os.environ.get("EASYAI_TEST_KUBECONFIG", "")
pytestmark = [
    pytest.mark.skipif(not KUBECONFIG, reason="EASYAI_TEST_KUBECONFIG is not set: no real cluster to test against"),
    pytest.mark.django_db,
    pytest.mark.slow,
]


@pytest.fixture
def real_cluster() -> Cluster:
    cluster = Cluster(name="it", kind=Cluster.Kind.KUBERNETES, namespace_prefix="easyai-it-",
                      settings={"request_timeout": 30})  # fmt: skip
    cluster.kubeconfig = Path(KUBECONFIG).read_text()
    cluster.save()
    return cluster


def test_real_cluster_round_trip(real_cluster):
    report = check_connection(real_cluster)
    assert report.ok, report.error
    team = Team.objects.create(name="it", slug=secrets.token_hex(4))
    team_provision(cluster=real_cluster, team=team)
    backend = KubernetesBackend(real_cluster)
    job = make_job("tensorboard", job_id=f"j-{secrets.token_hex(4)}", team=team.slug)
    task = job.tasks[0]
    task.image, task.command, task.cpu_milli, task.memory_bytes = (
        "busybox:1.36",
        ["sh", "-c", "echo hi; sleep 30"],
        100,
        64 * 2**20,
    )
    try:
        backend.submit(job)
        deadline = time.monotonic() + 180
        state = ObservedState.PENDING
        while time.monotonic() < deadline and state == ObservedState.PENDING:
            state = backend.observe([job.job_id])[job.job_id].state
            time.sleep(2)
        assert state == ObservedState.RUNNING
        assert backend.read_log(job.job_id, task.name)[0].startswith(b"hi")
        assert backend.capacity().cpu_milli > 0
    finally:
        backend.stop(job.job_id)
        backend.conn.core.delete_namespace(backend.namespace(team.slug))
