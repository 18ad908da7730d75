"""Datasets: made from a data folder, a job's output or a zip archive (copied, counted, digested, links refused);
team-visible, deleted by the owner or a team admin, 404 for outsiders; a version an active job mounts stays."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assets.models import Dataset, DatasetVersion
from clusters.backends.contract import storage
from jobs.models import Job, Task
from jobs.state import JobState

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets/"


def root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def data_of(username: str) -> Path:
    return root() / "data" / username


def expected_digest(files: dict[str, bytes]) -> str:
    total = hashlib.sha256()
    for path in sorted(files):
        total.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return total.hexdigest()


FILES = {"train.csv": b"x,y\n1,2\n", "images/a.png": b"\x89PNG" + bytes(range(256)), "images/b.png": b""}


def lay_out(folder: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)


def make(client, **body):
    return client.post(URL, json.dumps(body), content_type="application/json")


@pytest.fixture
def mnist(api, owner):
    lay_out(data_of("owner") / "mnist", FILES)
    response = make(api(owner), name="mnist", data_path="data:mnist", description="digits")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_version_from_a_data_folder_is_a_copy_with_its_size_count_and_digest(mnist, api, owner):
    assert mnist == {
        **mnist, "team": "vision", "dataset": "mnist", "version": 1, "ref": "mnist@1", "file_count": 3,
        "size_bytes": sum(map(len, FILES.values())), "digest": expected_digest(FILES), "source": "data",
        "source_ref": "data:mnist", "created_by": "owner", "mount_path": "/datasets/mnist",
        "variable": "EASYAI_DATASET_MNIST",
    }  # fmt: skip
    copy = root() / "datasets" / "vision" / "mnist" / "1"
    assert {p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == FILES
    # A copy: the data may change afterwards, the version does not.
    (data_of("owner") / "mnist" / "train.csv").write_bytes(b"changed")
    assert (copy / "train.csv").read_bytes() == FILES["train.csv"]
    second = make(api(owner), name="mnist", data_path="mnist")
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["digest"] != mnist["digest"]
    assert [entry.name for entry in (root() / "datasets" / "vision" / "mnist").iterdir()] in (["1", "2"], ["2", "1"])


def test_a_version_from_a_job_output_records_the_job(api, owner, team, fake_backend):
    job = Job.objects.create(
        name="prep", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}
    )
    Task.objects.create(job=job, role="main", index=0)
    lay_out(storage.output_dir(root(), job.public_id, "model_dir") / "features", {"f.npy": b"123"})
    response = make(api(owner), name="features", job_output=f"{job.public_id}/model_dir/features")
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "job" and response.json()["source_ref"] == f"{job.public_id}/model_dir/features"
    assert (root() / "datasets/vision/features/1/f.npy").read_bytes() == b"123"


def test_a_version_from_a_zip_upload(api, owner):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in FILES.items():
            archive.writestr(path, content)
    upload = SimpleUploadedFile("set.zip", buffer.getvalue(), content_type="application/zip")
    response = api(owner).post(URL, {"name": "zipped", "archive": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["digest"] == expected_digest(FILES) and response.json()["source"] == "upload"
    assert response.json()["source_ref"] == "set.zip"


def test_a_link_in_the_folder_is_refused_and_nothing_is_made(api, owner, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    lay_out(data_of("owner") / "bad", {"ok.txt": b"ok"})
    os.symlink(secret, data_of("owner") / "bad" / "leak.txt")
    response = make(api(owner), name="bad", data_path="bad")
    assert response.status_code == 400 and "symbolic link" in json.dumps(response.json())
    assert not Dataset.objects.exists()
    assert not any((root() / "datasets").rglob("leak.txt")) if (root() / "datasets").exists() else True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad_Name", "data_path": "mnist"}, "name"),
        ({"name": "x"}, "source"),
        ({"name": "x", "data_path": "mnist", "job_output": "j-abcdefgh/model_dir"}, "source"),
        ({"name": "x", "data_path": "../owner"}, "data_path"),
        ({"name": "x", "data_path": "nowhere"}, "data_path"),
        ({"name": "x", "job_output": "j-abcdefgh/log_dir"}, "job_output"),
        ({"name": "x", "job_output": "j-abcdefgh/model_dir"}, "job_output"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(api, owner, body, field):
    lay_out(data_of("owner") / "mnist", FILES)
    response = make(api(owner), **body)
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Dataset.objects.exists() and not DatasetVersion.objects.exists()


def test_an_empty_folder_is_refused(api, owner):
    (data_of("owner") / "empty").mkdir(parents=True)
    response = make(api(owner), name="empty", data_path="empty")
    assert response.status_code == 400 and "data_path" in response.json()


# --- who sees and who deletes ---------------------------------------------------------------------------------------


def test_team_mates_see_outsiders_get_404(mnist, api, owner, mate, team_admin, outsider):
    for user in (owner, mate, team_admin):
        assert [d["name"] for d in api(user).get(URL).json()] == ["mnist"]
        detail = api(user).get(f"{URL}vision/mnist/")
        assert detail.status_code == 200 and [v["ref"] for v in detail.json()["versions"]] == ["mnist@1"]
        assert api(user).get(f"{URL}vision/mnist/versions/1/").status_code == 200
    assert api(outsider).get(URL).json() == []
    for url in (f"{URL}vision/mnist/", f"{URL}vision/mnist/versions/1/"):
        assert api(outsider).get(url).status_code == 404
        assert api(outsider).delete(url).status_code == 404
    # An outsider cannot add a version to another team's dataset either.
    assert make(api(outsider), name="mnist", data_path="mnist", team="vision").status_code == 400
    assert DatasetVersion.objects.count() == 1


def test_a_team_mate_may_not_delete_or_add_a_version_the_owner_and_a_team_admin_may(
    mnist, api, owner, mate, team_admin, django_capture_on_commit_callbacks
):
    lay_out(data_of("mate") / "mine", {"m.txt": b"m"})
    assert make(api(mate), name="mnist", data_path="mine").status_code == 403
    assert api(mate).delete(f"{URL}vision/mnist/versions/1/").status_code == 403
    assert api(mate).delete(f"{URL}vision/mnist/").status_code == 403
    assert DatasetVersion.objects.count() == 1 and (root() / "datasets/vision/mnist/1").is_dir()

    assert make(api(owner), name="mnist", data_path="mnist").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):  # the files go once the rows have
        assert api(team_admin).delete(f"{URL}vision/mnist/versions/1/").status_code == 204
    assert not (root() / "datasets/vision/mnist/1").exists()
    assert [v.version for v in DatasetVersion.objects.all()] == [2]
    # The last version goes, and the dataset with it.
    with django_capture_on_commit_callbacks(execute=True):
        assert api(owner).delete(f"{URL}vision/mnist/versions/2/").status_code == 204
    assert not Dataset.objects.exists() and not (root() / "datasets/vision/mnist/2").exists()


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.PENDING, JobState.RUNNING])
def test_a_version_in_use_by_an_active_job_cannot_be_deleted(mnist, api, owner, team, fake_backend, state):
    job = Job.objects.create(
        name="train", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch",
        spec={"datasets": ["mnist@1"]}, state=state,
    )  # fmt: skip
    for url in (f"{URL}vision/mnist/versions/1/", f"{URL}vision/mnist/"):
        refused = api(owner).delete(url)
        assert refused.status_code == 409, refused.content
        assert job.public_id in refused.json()["detail"] and "mnist" in refused.json()["detail"]
    assert DatasetVersion.objects.count() == 1 and (root() / "datasets/vision/mnist/1/train.csv").is_file()
    assert api(owner).get(f"{URL}vision/mnist/").json()["in_use_by"] == [job.public_id]
    # Once the job has ended, the version may go.
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCESS)
    assert api(owner).delete(f"{URL}vision/mnist/versions/1/").status_code == 204


def test_another_version_of_a_dataset_in_use_may_be_deleted(mnist, api, owner, team, fake_backend):
    assert make(api(owner), name="mnist", data_path="mnist").status_code == 201
    Job.objects.create(
        name="train", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch",
        spec={"datasets": ["mnist@2"]}, state=JobState.RUNNING,
    )  # fmt: skip
    assert api(owner).delete(f"{URL}vision/mnist/versions/1/").status_code == 204
    assert api(owner).delete(f"{URL}vision/mnist/versions/2/").status_code == 409


def test_the_list_reads_in_a_constant_number_of_queries(api, owner):
    client = api(owner)
    lay_out(data_of("owner") / "d", {"a": b"a"})
    counts = []
    for name in ("one", "two", "three"):
        assert make(client, name=name, data_path="d").status_code == 201
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[-1], counts


def test_the_api_schema_has_the_datasets_endpoints(api, staff):
    schema = api(staff).get("/api/schema/?format=json")
    text = schema.content.decode()
    for path in (
        "/api/v1/datasets/",
        "/api/v1/datasets/{team}/{name}/",
        "/api/v1/datasets/{team}/{name}/versions/{version}/",
    ):
        assert path in text, path
    assert "DatasetVersion" in text and "DatasetCreate" in text


# --- pages --------------------------------------------------------------------------------------------------------


def test_pages_list_show_make_and_delete(client, mnist, owner, mate, outsider, team):
    client.force_login(mate)
    assert b"mnist" in client.get("/datasets/").content
    page = client.get("/datasets/vision/mnist/")
    assert page.status_code == 200 and b"mnist@1" in page.content and b"EASYAI_DATASET_MNIST" in page.content
    assert b"dataset-version-delete" not in page.content and b"/delete/" not in page.content
    assert client.post("/datasets/vision/mnist/1/delete/").status_code == 403
    client.force_login(outsider)
    assert client.get("/datasets/vision/mnist/").status_code == 404
    assert b"mnist" not in client.get("/datasets/").content
    client.force_login(owner)
    made = client.post("/datasets/new/", {"name": "mnist", "source": "data", "data_path": "mnist"})
    assert made.status_code == 302 and made["Location"] == "/datasets/vision/mnist/"
    assert sorted(DatasetVersion.objects.values_list("version", flat=True)) == [1, 2]
    refused = client.post("/datasets/new/", {"name": "mnist", "source": "data", "data_path": "nowhere"})
    assert refused.status_code == 400 and b"There is no folder" in refused.content
    deleted = client.post("/datasets/vision/mnist/1/delete/")
    assert deleted.status_code == 302 and sorted(DatasetVersion.objects.values_list("version", flat=True)) == [2]
