"""A spec's ``datasets: [name@version]``: validated, resolved against the job's team, mounted read-only in every task
(``/datasets/{name}``, ``$EASYAI_DATASET_{NAME}``) on the local backend (real processes in real sandboxes) and in
every kind of Kubernetes object, rendered and checked strictly against the schemas."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.conf import settings

from assets.models import Dataset, DatasetVersion
from clusters.backends.contract import storage
from clusters.backends.kubernetes.manifests.names import NFS_VOLUME
from clusters.backends.kubernetes.schema_check import validate_manifest
from jobs import spec as job_spec
from jobs import workers
from jobs.describe import describe
from jobs.models import Job
from jobs.state import JobState
from testing.fakekube import make_cluster
from testing.isolation import needs_sandbox


def root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def dataset(team, owner, name: str, version: int, files: dict[str, bytes]) -> DatasetVersion:
    """A version as files.datasets leaves it: the row and its folder."""
    row, _ = Dataset.objects.get_or_create(team=team, name=name, defaults={"owner": owner})
    folder = root() / storage.dataset_dir(team.slug, name, version)
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    return DatasetVersion.objects.create(dataset=row, version=version, source="data", file_count=len(files))


# --- the spec ---------------------------------------------------------------------------------------------------------


def _spec(**fields):
    return {"name": "t", "framework": "batch", "command": "true", "roles": {"main": {}}, **fields}


def test_the_spec_keeps_its_shape_without_datasets_and_takes_a_list_of_name_at_version():
    assert "datasets" not in job_spec.validate(_spec())
    assert job_spec.validate(_spec(datasets=["mnist@1", "coco-2017@12"]))["datasets"] == ["mnist@1", "coco-2017@12"]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("mnist@1", "datasets"),
        ({"mnist": 1}, "datasets"),
        (["mnist"], "datasets.0"),
        (["mnist@0"], "datasets.0"),
        (["Mnist@1"], "datasets.0"),
        (["mnist@1", "mnist@2"], "datasets.1"),
        ([f"d{i}@1" for i in range(storage.MAX_DATASETS + 1)], "datasets"),
    ],
)
def test_a_bad_datasets_field_is_named(value, path):
    with pytest.raises(job_spec.SpecError) as caught:
        job_spec.validate(_spec(datasets=value))
    assert path in caught.value.errors, caught.value.errors


def test_places_mount_each_dataset_read_only_and_count_it_foreign():
    places = storage.places(
        "j-abcdefgh", "main-0", "alice", team="vision", datasets={"coco-2017": "vision/coco-2017/3"}
    )
    [place] = [p for p in places if p.variable.startswith("EASYAI_DATASET_")]
    assert place == storage.Place(
        "EASYAI_DATASET_COCO_2017", "/datasets/coco-2017", "datasets/vision/coco-2017/3", read_only=True
    )
    assert storage.is_foreign(place)


@pytest.mark.django_db
def test_a_submit_names_a_dataset_of_its_team_or_is_refused(api, owner, team, other_team, outsider, fake_backend):
    dataset(team, owner, "mnist", 1, {"a": b"a"})
    dataset(other_team, outsider, "secret", 1, {"a": b"a"})
    client = api(owner)
    refused = client.post(
        "/api/v1/jobs/", json.dumps(_spec(datasets=["mnist@2", "secret@1"])), content_type="application/json"
    )
    assert refused.status_code == 400, refused.content
    assert set(refused.json()) == {"datasets.0", "datasets.1"}, refused.json()
    assert not Job.objects.exists()
    accepted = client.post("/api/v1/jobs/", json.dumps(_spec(datasets=["mnist@1"])), content_type="application/json")
    assert accepted.status_code == 201, accepted.content
    # What the backend is handed (the submit itself runs after the commit).
    [task] = describe(Job.objects.get(public_id=accepted.json()["id"])).tasks
    assert task.env["EASYAI_DATASET_MNIST"] == str(root() / "datasets/vision/mnist/1")
    assert any(p.variable == "EASYAI_DATASET_MNIST" and p.read_only for p in task.places)


# --- the local backend, for real --------------------------------------------------------------------------------------

READER = (
    'set -u; cat "$EASYAI_DATASET_MNIST/train.csv"; cat "$EASYAI_DATASET_MNIST/labels/l.txt"; '
    'test "$EASYAI_DATASET_MNIST" = "{path}" && echo "path ok"; '
    'if (echo x > "$EASYAI_DATASET_MNIST/train.csv") 2>/dev/null; then echo "dataset writable"; '
    'else echo "dataset read-only"; fi; '
    'if (touch "$EASYAI_DATASET_MNIST/new") 2>/dev/null; then echo "dataset writable"; else echo "dataset read-only"; fi'
)


def _until_final(job: Job, cluster, timeout: float = 90) -> Job:
    deadline = time.monotonic() + timeout
    while not job.is_final:
        assert time.monotonic() < deadline, (job.state, job.message)
        workers.cluster_sync(cluster)  # what the scheduler's sync passes do
        time.sleep(0.2)
        job = Job.objects.get(pk=job.pk)
    return job


@needs_sandbox
@pytest.mark.slow
def test_a_dataset_is_mounted_by_name_at_version_in_both_tasks_and_cannot_be_written(
    api, owner, team, local_cluster, stop_all
):
    dataset(team, owner, "mnist", 1, {"train.csv": b"old rows\n"})
    version = dataset(team, owner, "mnist", 2, {"train.csv": b"x,y\n1,2\n", "labels/l.txt": b"seven\n"})
    path = root() / storage.dataset_dir("vision", "mnist", version.version)
    spec = _spec(
        name="reads-mnist", datasets=["mnist@2"], command=READER.format(path=path),
        roles={"main": {"replicas": 2, "cpu": "0.5", "memory": "256Mi"}},
    )  # fmt: skip
    response = api(owner).post("/api/v1/jobs/", json.dumps(spec), content_type="application/json")
    assert response.status_code == 201, response.content
    job = _until_final(Job.objects.get(public_id=response.json()["id"]), local_cluster)
    assert job.state == JobState.SUCCESS, job.message
    for task in ("main-0", "main-1"):
        log = storage.task_log_path(root(), job.public_id, task).read_text()
        assert log == "x,y\n1,2\nseven\npath ok\ndataset read-only\ndataset read-only\n", (task, log)
    assert (path / "train.csv").read_bytes() == b"x,y\n1,2\n" and not (path / "new").exists()


# --- every Kubernetes object kind -------------------------------------------------------------------------------------

FRAMEWORK_ROLES = {
    "pytorch": {"master": {}, "worker": {"replicas": 2}},
    "tensorflow": {"chief": {}, "ps": {}, "worker": {"replicas": 2}},
    "mpi": {"launcher": {}, "worker": {"replicas": 2}},
    "xgboost": {"master": {}, "worker": {}},
    "paddle": {"master": {}, "worker": {"replicas": 2}},
    "batch": {"driver": {}, "executor": {"replicas": 2}},
}


def _pod_specs(manifest: dict) -> list[dict]:
    spec = manifest["spec"]
    if manifest["kind"] == "Job":
        return [task["template"]["spec"] for task in spec["tasks"]]
    (field,) = [name for name in spec if name.endswith("ReplicaSpecs")]
    return [replica["template"]["spec"] for replica in spec[field].values()]


@pytest.mark.django_db
@pytest.mark.parametrize("volcano", [False, True], ids=["default-scheduler", "volcano"])
@pytest.mark.parametrize("framework", list(FRAMEWORK_ROLES))
def test_every_kubernetes_kind_mounts_the_datasets_read_only_and_validates_strictly(
    api, owner, team, kube, framework, volcano
):
    make_cluster(kube, name="gpu-a", is_default=True, scheduler="volcano" if volcano else "default")
    dataset(team, owner, "mnist", 3, {"a": b"a"})
    dataset(team, owner, "coco-2017", 1, {"a": b"a"})
    spec = _spec(
        name="k8s-datasets", framework=framework, image="registry.example/train:1", command="python train.py",
        roles=FRAMEWORK_ROLES[framework], datasets=["mnist@3", "coco-2017@1"],
    )  # fmt: skip
    response = api(owner).post("/api/v1/jobs/?dry_run=true", json.dumps(spec), content_type="application/json")
    assert response.status_code == 200, response.content
    manifests = response.json()["manifests"]
    workload = [m for m in manifests if m["kind"] not in ("Service", "ConfigMap", "PodGroup")]
    assert workload and all(validate_manifest(m) == [] for m in manifests)
    pods = [pod for m in workload for pod in _pod_specs(m)]
    assert len(pods) == len(FRAMEWORK_ROLES[framework])
    for pod in pods:
        (container,) = pod["containers"]
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        assert mounts["/datasets/mnist"] == {
            "name": NFS_VOLUME, "mountPath": "/datasets/mnist", "subPath": "datasets/vision/mnist/3", "readOnly": True,
        }  # fmt: skip
        assert mounts["/datasets/coco-2017"]["subPath"] == "datasets/vision/coco-2017/1"
        assert mounts["/datasets/coco-2017"]["readOnly"] is True
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["EASYAI_DATASET_MNIST"] == "/datasets/mnist"
        assert env["EASYAI_DATASET_COCO_2017"] == "/datasets/coco-2017"
    if volcano and framework == "batch":
        assert any(m["kind"] == "Job" and m["apiVersion"].startswith("batch.volcano.sh") for m in workload)
