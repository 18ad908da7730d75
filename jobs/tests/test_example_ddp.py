"""The PyTorch DDP example end to end, as the README tells a new user to run it: through the API, on the local cluster."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs import workers
from jobs.models import Job
from jobs.state import JobState

pytestmark = pytest.mark.slow

EXAMPLE = Path(settings.BASE_DIR) / "examples" / "pytorch-ddp"


def _require_torch() -> None:
    if os.environ.get("EASYAI_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401 - must be there: a missing torch fails here instead of skipping
    else:
        pytest.importorskip("torch")


def test_the_pytorch_ddp_example_trains_through_the_api_on_the_local_cluster(transactional_db, owner, api):
    _require_torch()
    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 2, "memory": "4Gi", "stop_grace": 2}
    )
    root = Path(settings.EASYAI_STORAGE_ROOT)
    # The README: the job runs in the personal workspace, so the script goes there first, keeping its path.
    workspace = storage.personal_workspace(root, owner.username)
    (workspace / "examples").mkdir(parents=True)
    shutil.copytree(EXAMPLE, workspace / "examples" / "pytorch-ddp")

    response = api(owner).post("/api/v1/jobs/", (EXAMPLE / "job.yaml").read_bytes(), content_type="application/yaml")

    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    assert job.cluster == cluster
    deadline = time.monotonic() + 180
    while not job.is_final:
        assert time.monotonic() < deadline, (job.state, job.message)
        workers.cluster_sync(cluster)  # what the scheduler's sync passes do
        time.sleep(0.2)
        job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCESS, job.message
    assert sorted((t.role, t.state, t.exit_code) for t in job.tasks.all()) == [
        ("master", "succeeded", 0),
        ("worker", "succeeded", 0),
    ]

    master_log = storage.task_log_path(root, job.public_id, "master-0").read_text()
    worker_log = storage.task_log_path(root, job.public_id, "worker-0").read_text()
    assert "rank 0 of world size 2" in master_log and "rank 1 of world size 2" in worker_log
    losses = [float(x) for x in re.findall(r"^epoch \d+/20 loss (\S+)$", master_log, re.MULTILINE)]
    assert len(losses) == 20 and losses[-1] < losses[0], master_log
    assert "rank 0 final loss" in master_log and "rank 1 final loss" in worker_log

    model = storage.output_dir(root, job.public_id, "model_dir") / "model.pt"
    assert model.stat().st_size > 0
    for task in ("master-0", "worker-0"):
        summaries = storage.output_dir(root, job.public_id, "summary_dir", task)
        events = list(summaries.glob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 0, sorted(summaries.iterdir())

    detail = api(owner).get(f"/api/v1/jobs/{job.public_id}/")
    assert detail.status_code == 200 and detail.json()["state"] == "success"
