"""A job's whole life on a Kubernetes cluster: API → submit worker → fake API server → sync → final state."""

import json

import pytest

from clusters.backends.kubernetes.schema_check import validate_manifest
from jobs import tasks
from jobs.describe import describe
from jobs.models import Job, Volume
from jobs.state import JobState
from testing.fakekube import make_cluster

pytestmark = pytest.mark.django_db

PYTORCH = ("kubeflow.org", "v1", "pytorchjobs")
NS = "easyai-vision"


@pytest.fixture
def cluster(kube):
    return make_cluster(kube, name="gpu-a", is_default=True)


def test_dry_run_on_kubernetes_returns_manifests_that_validate_strictly(api, owner, team, cluster, spec_doc):
    volume = Volume.objects.create(name="datasets", mount_path="/datasets", nfs_server="nfs.example.org", nfs_path="/data")
    volume.teams.add(team)
    doc = spec_doc(
        volumes=["datasets"],
        scheduling={"node_selector": {"pool": "cpu"}, "oversell": 2},
        env={"EPOCHS": "3"},
    )
    response = api(owner).post("/api/v1/jobs/?dry_run=true", json.dumps(doc), content_type="application/json")
    assert response.status_code == 200, response.content
    manifests = response.json()["manifests"]
    assert manifests and all(validate_manifest(m) == [] for m in manifests)
    job = next(m for m in manifests if m["kind"] == "PyTorchJob")
    assert job["metadata"]["namespace"] == NS
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "easyai"
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2
    pod = worker["template"]["spec"]
    assert {"name": "datasets", "nfs": {"server": "nfs.example.org", "path": "/data", "readOnly": True}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "datasets", "mountPath": "/datasets", "readOnly": True} in container["volumeMounts"]
    assert container["resources"]["limits"]["cpu"] == "500m" and container["resources"]["requests"]["cpu"] == "250m"
    assert not Job.objects.exists()


def test_a_pytorch_job_runs_its_course_on_the_cluster(
    api, owner, cluster, kube, spec_doc, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner).post("/api/v1/jobs/", json.dumps(spec_doc()), content_type="application/json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    assert job.state == JobState.PENDING
    created = kube.get(*PYTORCH, NS, job.public_id)
    assert created["metadata"]["labels"]["easyai.io/job-id"] == job.public_id
    # A submit that reaches the cluster twice (a worker died after creating) finds the object (409) and carries on.
    cluster.backend().submit(describe(job))
    assert len(kube.of_kind(*PYTORCH)) == 1
    tasks.submit_job(job.pk)  # a redelivered submit of a pending job does nothing
    assert len(kube.requests("POST")) == 2

    kube.set_status(*PYTORCH, NS, job.public_id, {"conditions": [{"type": "Running", "status": "True"}]})
    tasks.sync_cluster(cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING

    kube.set_status(
        *PYTORCH, NS, job.public_id,
        {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]},
    )  # fmt: skip
    tasks.sync_cluster(cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS
    assert [e.to_state for e in job.events.all()] == ["pending", "running", "success"]
