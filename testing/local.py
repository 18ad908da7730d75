"""A local cluster for tests that run real jobs (notebooks, endpoints): its fixtures, loaded by the plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusters.models import Cluster


@pytest.fixture
def local_cluster(transactional_db, tmp_path, monkeypatch) -> Cluster:
    """A local cluster; its tasks get a home of their own (Jupyter keeps its runtime files there)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "8Gi", "stop_grace": 2}
    )


@pytest.fixture
def stop_all(local_cluster) -> Iterator[None]:
    """Every job of the local cluster is stopped after the test, whatever it left running."""
    yield
    from jobs.models import Job

    backend = local_cluster.backend()
    for job_id in Job.objects.filter(cluster=local_cluster).values_list("public_id", flat=True):
        backend.stop(job_id)
