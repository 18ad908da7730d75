"""TensorBoard over a real job's summaries, started on the local backend and opened through the endpoint proxy."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from clusters.backends.contract import storage
from jobs import services as job_services
from jobs import workers as job_workers
from jobs.models import Job
from jobs.state import JobState
from notebooks import workers
from notebooks.models import TensorBoard
from notebooks.tests.conftest import wait_until
from testing.web import fetch, token_for, wait_answering

pytestmark = pytest.mark.slow

REPO = Path(settings.BASE_DIR)
# Without torch: a job that writes a scalar with TensorBoard's own event writer, as a training script would.
WRITE_EVENTS = """
import os, time
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
writer = EventFileWriter(os.environ["summary_dir"])
for step in range(5):
    value = Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
    writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=[value])))
writer.close()
print("wrote summaries")
"""


def _use_torch() -> bool:
    if os.environ.get("EASYAI_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401 - must be there: a missing torch fails here instead of falling back

        return True
    return importlib.util.find_spec("torch") is not None


def _train(owner, cluster) -> Job:
    """A finished job with summaries: the DDP example on a master and a worker, or the event writer."""
    if _use_torch():
        # In the owner's workspace, as the README says: a task does not see the portal's code.
        example = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username) / "pytorch-ddp"
        example.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / "pytorch-ddp" / "train.py", example / "train.py")
        command = [sys.executable, str(example / "train.py"), "--epochs", "5"]
        spec = {
            "name": "ddp",
            "framework": "pytorch",
            "command": command,
            "roles": {"master": {"cpu": "1", "memory": "1Gi"}, "worker": {"cpu": "1", "memory": "1Gi"}},
        }
    else:
        spec = {
            "name": "events",
            "framework": "batch",
            "command": [sys.executable, "-c", WRITE_EVENTS],
            "roles": {"main": {"cpu": "500m", "memory": "512Mi"}},
        }
    job = job_services.job_submit(user=owner, data=spec)

    def ended() -> Job | None:
        job_workers.cluster_sync(cluster)
        fresh = Job.objects.get(pk=job.pk)
        return fresh if fresh.is_final else None

    finished = wait_until(ended, 180, f"{job.public_id} to finish", every=0.3)
    assert finished.state == JobState.SUCCESS, finished.message
    return finished


def test_tensorboard_over_a_jobs_summaries_answers_through_the_proxy_is_reused_and_stops_when_idle(
    asgi_server, local_cluster, stop_all, people
):
    owner = people["owner"]
    trained = _train(owner, local_cluster)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(owner)}")

    response = client.post("/api/v1/tensorboards/", {"jobs": [trained.public_id]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    board = TensorBoard.objects.get(pk=body["id"])
    assert body["jobs"] == [trained.public_id] and board.job.framework == "tensorboard"
    assert body["url"] == f"http://localhost:8001/endpoints/{board.job.public_id}/tensorboard-0/tensorboard/"

    def serving() -> bool:
        job_workers.cluster_sync(local_cluster)
        task = board.job.tasks.get()
        return "tensorboard" in task.ready_endpoints  # it answered: the proxy routes to it

    wait_until(serving, 60, "TensorBoard to answer", every=0.2)
    assert client.get(f"/api/v1/tensorboards/{board.pk}/").json()["ready"] is True
    base = f"/endpoints/{board.job.public_id}/tensorboard-0/tensorboard/"
    runs = json.loads(wait_answering(asgi_server.port, base + "data/runs", owner))
    assert any(run.startswith(f"{trained.name}.{trained.public_id}/") for run in runs), runs

    def tags() -> dict | None:
        status, _headers, data = fetch(asgi_server.port, base + "data/plugin/scalars/tags", user=owner)
        loaded = json.loads(data) if status == 200 else {}
        return loaded if any(loaded.values()) else None

    scalars = wait_until(tags, 60, "the loss scalars to load", every=0.5)
    assert any("loss" in run_tags for run_tags in scalars.values()), scalars
    page = fetch(asgi_server.port, base, user=owner, Accept="text/html")
    assert page[0] == 200 and b"TensorBoard" in page[2]

    # Whoever may see the job may open its TensorBoard; nobody else learns it exists.
    assert fetch(asgi_server.port, base + "data/runs", user=people["mate"])[0] == 200
    assert fetch(asgi_server.port, base + "data/runs", user=people["outsider"])[0] == 404

    # The same jobs again: the running one is reused, not a second TensorBoard.
    again = client.post("/api/v1/tensorboards/", {"jobs": [trained.public_id]}, format="json")
    assert again.status_code == 200 and again.json()["id"] == board.pk
    assert TensorBoard.objects.count() == 1

    # Opened just now: not idle. Nobody opening it for the idle time: stopped by itself.
    assert workers.tensorboards_idle() == []
    later = timezone.now() + timedelta(minutes=workers.tensorboard_idle_minutes() + 1)
    assert workers.tensorboards_idle(later) == [board.pk]
    board.job.refresh_from_db()
    assert (board.job.state, board.job.reason) == (JobState.STOPPED, "idle")
    assert fetch(asgi_server.port, base + "data/runs", user=owner)[0] == 404
    # Once it ended, asking again starts a new one.
    third = client.post("/api/v1/tensorboards/", {"jobs": [trained.public_id]}, format="json")
    assert third.status_code == 201 and third.json()["id"] != board.pk


def test_tensorboard_is_refused_for_jobs_without_summaries_or_not_visible(people, fake_backend):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(people['owner'])}")
    response = client.post("/api/v1/tensorboards/", {"jobs": ["j-00000000"]}, format="json")
    assert response.status_code == 400 and "jobs" in response.json()
    spec = {"name": "quiet", "framework": "batch", "command": "true", "cluster": "fake", "roles": {"main": {}}}
    job = job_services.job_submit(user=people["outsider"], data=spec)
    response = client.post("/api/v1/tensorboards/", {"jobs": [job.public_id]}, format="json")
    assert response.status_code == 400 and job.public_id in response.json()["jobs"][0]
    mine = job_services.job_submit(user=people["owner"], data=spec)
    response = client.post("/api/v1/tensorboards/", {"jobs": [mine.public_id]}, format="json")
    assert response.status_code == 400 and "summaries" in response.json()["jobs"][0]
    assert not TensorBoard.objects.exists()


# --- on Kubernetes ------------------------------------------------------------------------------------


def _started_on_kubernetes(owner, cluster, kube, on_commit) -> Job:
    """A PyTorch job on the fake cluster that the operator reports running (so it may have summaries)."""
    from jobs import tasks

    spec = {
        "name": "ddp",
        "framework": "pytorch",
        "cluster": cluster.name,
        "image": "registry.example/train:1",
        "command": "python train.py",
        "roles": {"master": {"cpu": "1", "memory": "1Gi"}, "worker": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
    }
    with on_commit(execute=True):  # the submit worker creates it on the cluster
        job = job_services.job_submit(user=owner, data=spec)
    running = {"conditions": [{"type": "Running", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    kube.set_status("kubeflow.org", "v1", "pytorchjobs", "easyai-vision", job.public_id, running)
    tasks.sync_cluster(cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.started_at is not None
    return job


def test_tensorboard_on_kubernetes_mounts_the_jobs_summary_dirs_and_serves_under_the_proxy_path(
    kube, people, django_capture_on_commit_callbacks
):
    from clusters.backends.kubernetes.schema_check import validate_manifest
    from notebooks import services, tensorboard
    from notebooks.tests.conftest import argv_of, created_pod
    from testing.fakekube import make_cluster

    owner = people["owner"]
    cluster = make_cluster(kube, is_default=True)
    trained = _started_on_kubernetes(owner, cluster, kube, django_capture_on_commit_callbacks)
    # The portal does not mount the cluster's NFS export here: a started job may have summaries.
    assert tensorboard.has_summaries(trained)
    with django_capture_on_commit_callbacks(execute=True):
        board, created = services.tensorboard_open(user=owner, job_ids=[trained.public_id])
    assert created and board.cluster == cluster and board.job.framework == "tensorboard"

    pod = created_pod(kube, board.job.public_id)
    assert validate_manifest(pod) == []
    container = pod["spec"]["containers"][0]
    assert container["image"] == settings.EASYAI_TENSORBOARD_IMAGE
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for task in ("master-0", "worker-0"):
        assert mounts[f"/summaries/{trained.public_id}/{task}"] == {
            "name": "easyai-nfs",
            "mountPath": f"/summaries/{trained.public_id}/{task}",
            "subPath": f"{trained.public_id}/{task}/summary_dir",
            "readOnly": True,
        }
    run = f"ddp.{trained.public_id}"
    assert argv_of(container) == [
        "tensorboard",
        "--logdir_spec",
        f"{run}/master-0:/summaries/{trained.public_id}/master-0,{run}/worker-0:/summaries/{trained.public_id}/worker-0",
        "--path_prefix",
        f"/endpoints/{board.job.public_id}/tensorboard-0/tensorboard",
        "--host",
        "0.0.0.0",
        "--port",
        "6006",
        "--load_fast",
        "false",
        "--reload_interval",
        "15",
    ]
    assert container["ports"] == [{"name": "tensorboard", "containerPort": 6006, "protocol": "TCP"}]

    # The same job again while it runs: reused.
    again, created = services.tensorboard_open(user=owner, job_ids=[trained.public_id])
    assert not created and again.pk == board.pk


def test_tensorboard_on_kubernetes_without_nfs_storage_is_refused_naming_why(
    kube, people, django_capture_on_commit_callbacks
):
    from django.core.exceptions import ValidationError

    from clusters.models import Cluster
    from notebooks import services, tensorboard
    from testing.fakekube import make_cluster

    owner = people["owner"]
    cluster = make_cluster(kube, is_default=True)
    trained = _started_on_kubernetes(owner, cluster, kube, django_capture_on_commit_callbacks)
    Cluster.objects.filter(pk=cluster.pk).update(nfs_server="", nfs_path="")
    trained = Job.objects.select_related("cluster").get(pk=trained.pk)
    assert not tensorboard.has_summaries(trained)
    with pytest.raises(ValidationError) as refused:
        services.tensorboard_open(user=owner, job_ids=[trained.public_id])
    (message,) = refused.value.message_dict["jobs"]
    assert "gpu-a" in message and "NFS" in message
    assert not TensorBoard.objects.exists()
    assert not kube.requests("POST", r"/pods$")
