"""What a backend is handed: each task's log path and storage places, resolved from the storage layout."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs import services
from jobs.describe import describe

SPEC = {
    "name": "places",
    "framework": "batch",
    "command": "true",
    "roles": {"main": {"replicas": 2, "cpu": "250m", "memory": "128Mi"}},
}


def test_each_task_carries_its_log_path_and_the_places_it_sees_a_previous_jobs_model_dir_included(owner):
    Cluster.objects.create(name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "4Gi"})
    first = services.job_submit(user=owner, data=SPEC)
    job = services.job_submit(user=owner, data={**SPEC, "pre_job": first.public_id})
    root = Path(settings.EASYAI_STORAGE_ROOT)

    description = describe(job)

    assert [task.name for task in description.tasks] == ["main-0", "main-1"]
    for task in description.tasks:
        assert task.log_path == str(root / job.public_id / "log_dir" / f"{task.name}.log")
        assert task.places == storage.places(job.public_id, task.name, owner.username, first.public_id)
        assert "pre_model_dir" in {place.variable for place in task.places}
        # The places and the variables the task finds are the same layout.
        assert {p.variable: str(root / p.relative) for p in task.places if p.variable} == {
            name: task.env[name] for name in task.storage
        }


def test_a_kubernetes_task_carries_the_same_places_and_its_log_stays_under_the_portals_root(owner):
    Cluster.objects.create(name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "4Gi"})
    job = services.job_submit(user=owner, data=SPEC)
    job.cluster = Cluster(name="gpu-a", kind=Cluster.Kind.KUBERNETES, nfs_path="/export/easyai")

    (task, _) = describe(job).tasks

    assert task.places == storage.places(job.public_id, "main-0", owner.username)
    assert task.log_path == str(Path(settings.EASYAI_STORAGE_ROOT) / job.public_id / "log_dir" / "main-0.log")
    assert task.storage == {p.variable or p.container_path: f"/export/easyai/{p.relative}" for p in task.places}
