"""Every shipped template (examples/templates/) runs to success on the local cluster, submitted through the API with
values, the way a user runs it; each checks what its framework's contract gave its tasks."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest

from clusters.backends.contract import storage
from jobs import templates, workers
from jobs.models import Job
from jobs.state import JobState

pytestmark = pytest.mark.slow


def _require_torch() -> None:
    if os.environ.get("EASYAI_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401 - must be there: a missing torch fails here instead of skipping
    else:
        pytest.importorskip("torch")


def run(api, user, cluster, name: str, values: dict[str, str]) -> tuple[Job, dict[str, str]]:
    templates.load_platform_templates()
    template = templates.template_named(user, name)
    response = api(user).post(f"/api/v1/templates/{template.pk}/submit/", {"values": values}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    deadline = time.monotonic() + 240
    while not job.is_final:
        assert time.monotonic() < deadline, (job.state, job.message)
        workers.cluster_sync(cluster)
        time.sleep(0.2)
        job = Job.objects.get(pk=job.pk)
    root = storage_root()
    logs = {t.name: _log(root, job, t.name) for t in job.tasks.all()}
    assert job.state == JobState.SUCCESS, (job.message, logs)
    assert all(t.exit_code == 0 for t in job.tasks.all()), logs
    return job, logs


def storage_root():
    from pathlib import Path

    from django.conf import settings

    return Path(settings.EASYAI_STORAGE_ROOT)


def _log(root, job: Job, task: str) -> str:
    path = storage.task_log_path(root, job.public_id, task)
    return path.read_text() if path.exists() else ""


def model_file(job: Job, name: str):
    return storage.output_dir(storage_root(), job.public_id, "model_dir") / name


def test_the_batch_template_runs(api, owner, local_cluster, stop_all):
    job, logs = run(api, owner, local_cluster, "batch", {"workers": "3", "epochs": "2"})
    assert sorted(logs) == ["prepare-0", "train-0", "train-1", "train-2"]
    assert "epoch 2 of 2" in logs["train-2"] and "training for 2 epochs" in logs["train-0"]
    assert model_file(job, "train-2.txt").read_text().strip() == "trained by train-2"


def test_the_pytorch_ddp_template_runs(api, owner, local_cluster, stop_all):
    _require_torch()
    job, logs = run(api, owner, local_cluster, "pytorch-ddp", {"workers": "1", "epochs": "15"})
    assert "rank 0 of world size 2" in logs["master-0"] and "rank 1 of world size 2" in logs["worker-0"]
    losses = [float(x) for x in re.findall(r"^epoch \d+/15 loss (\S+)$", logs["master-0"], re.MULTILINE)]
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert model_file(job, "model.pt").stat().st_size > 0


def test_the_tensorflow_ps_template_runs(api, owner, local_cluster, stop_all):
    job, logs = run(api, owner, local_cluster, "tensorflow-ps", {"workers": "2", "steps": "40"})
    assert sorted(logs) == ["chief-0", "ps-0", "worker-0", "worker-1"]
    # Each task was told the whole cluster and its own place in it (TF_CONFIG).
    assert "task worker:1 in cluster" in logs["worker-1"] and '"ps": ["127.0.0.1:' in logs["ps-0"]
    assert "ps 0: served 80 updates" in logs["ps-0"]
    model = json.loads(model_file(job, "model.json").read_text())
    assert abs(model["w"] - 3) < 0.3 and abs(model["b"] - 1) < 0.3 and model["updates"] == 80


@pytest.mark.skipif(not shutil.which("mpirun"), reason="Open MPI is not installed")
def test_the_mpi_horovod_template_runs(api, owner, local_cluster, stop_all):
    _require_torch()
    job, logs = run(api, owner, local_cluster, "mpi-horovod", {"workers": "2", "epochs": "15"})
    launcher = logs["launcher-0"]
    assert "rank 0 of 2 (MPI)" in launcher and "rank 1 of 2 (MPI)" in launcher
    losses = [float(x) for x in re.findall(r"^epoch \d+/15 loss (\S+)$", launcher, re.MULTILINE)]
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert model_file(job, "model.pt").stat().st_size > 0


def test_the_xgboost_template_runs(api, owner, local_cluster, stop_all):
    _require_torch()
    job, logs = run(api, owner, local_cluster, "xgboost", {"workers": "1", "rounds": "15"})
    assert "rank 0 of world size 2" in logs["master-0"] and "rank 1 of world size 2" in logs["worker-0"]
    accuracy = [float(x) for x in re.findall(r"^round \d+/15 accuracy (\S+)$", logs["master-0"], re.MULTILINE)]
    assert accuracy and accuracy[-1] > 0.85, logs["master-0"]
    assert len(json.loads(model_file(job, "model.json").read_text())["trees"]) == 15


def test_the_paddle_template_runs(api, owner, local_cluster, stop_all):
    _require_torch()
    job, logs = run(api, owner, local_cluster, "paddle", {"workers": "2", "epochs": "15"})
    assert "trainer 0 of 2 at 127.0.0.1:" in logs["worker-0"] and "trainer 1 of 2" in logs["worker-1"]
    losses = [float(x) for x in re.findall(r"^epoch \d+/15 loss (\S+)$", logs["worker-0"], re.MULTILINE)]
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert model_file(job, "model.pt").stat().st_size > 0
