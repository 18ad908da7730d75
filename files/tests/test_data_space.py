"""The data space (data/{owner}, every job's data_dir): the same verbs as the workspaces, its owner's alone, in the
files pages; and a real job on the local backend reads what was uploaded and cannot write there."""

from __future__ import annotations

import json
import time

import pytest

from clusters.backends.contract import storage
from files.tests.conftest import ALL_BYTES, body, files_url, storage_root
from jobs import workers
from jobs.models import Job
from jobs.state import JobState
from testing.isolation import needs_sandbox


def data_of(username: str):
    return storage_root() / "data" / username


@pytest.mark.django_db
def test_upload_list_download_mkdir_and_delete_in_the_data_space(api, owner):
    client = api(owner)
    put = client.put(files_url("data", "mnist/train.bin"), ALL_BYTES, content_type="application/octet-stream")
    assert put.status_code == 201, put.content
    assert (data_of("owner") / "mnist" / "train.bin").read_bytes() == ALL_BYTES
    assert [e["name"] for e in client.get(files_url("data", "mnist/")).json()["entries"]] == ["train.bin"]
    assert body(client.get(files_url("data", "mnist/train.bin"))) == ALL_BYTES
    assert client.put(files_url("data", "mnist/labels") + "?mkdir=1").status_code == 201
    assert (data_of("owner") / "mnist" / "labels").is_dir()
    from django.core.files.uploadedfile import SimpleUploadedFile

    posted = client.post(files_url("data", "mnist/labels/"), {"file": [SimpleUploadedFile("l.txt", b"7\n")]})
    assert posted.status_code == 201 and (data_of("owner") / "mnist/labels/l.txt").read_bytes() == b"7\n"
    assert client.delete(files_url("data", "mnist") + "?recursive=1").status_code == 204
    assert list(data_of("owner").iterdir()) == []


@pytest.mark.django_db
def test_each_user_sees_only_their_own_data(api, owner, mate, outsider):
    api(owner).put(files_url("data", "secret.csv"), b"owner's", content_type="application/octet-stream")
    for user in (mate, outsider):
        assert api(user).get(files_url("data", "")).json()["entries"] == []
        assert api(user).get(files_url("data", "secret.csv")).status_code == 404
        assert api(user).get(files_url("data", "../owner/secret.csv")).status_code in (400, 404)
    assert (data_of("owner") / "secret.csv").read_bytes() == b"owner's"


@pytest.mark.django_db
def test_the_files_page_has_a_data_tab(client, owner):
    (data_of("owner") / "mnist").mkdir(parents=True)
    client.force_login(owner)
    page = client.get("/files/?space=data")
    assert page.status_code == 200
    text = page.content.decode()
    assert "?space=data" in text and "mnist" in text and "$data_dir" in text
    uploaded = client.post("/files/upload/", {"space": "data", "path": "mnist", "file": [_file("a.csv", b"1,2\n")]})
    assert uploaded.status_code == 302 and (data_of("owner") / "mnist" / "a.csv").read_bytes() == b"1,2\n"


def _file(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


@pytest.mark.django_db
def test_the_api_schema_offers_the_data_space(api, owner):
    schema = api(owner).get("/api/schema/?format=json").json()
    [space] = [p for p in schema["paths"]["/api/v1/files/{space}/{path}"]["get"]["parameters"] if p["name"] == "space"]
    assert sorted(space["schema"]["enum"]) == ["data", "personal", "public"]


READER = (
    'cat "$data_dir/mnist/train.csv"; '
    'if (echo x >> "$data_dir/mnist/train.csv") 2>/dev/null; then echo "data_dir writable"; '
    'else echo "data_dir read-only"; fi; '
    'if (touch "$data_dir/new") 2>/dev/null; then echo "data_dir writable"; else echo "data_dir read-only"; fi'
)


@needs_sandbox
@pytest.mark.slow
def test_a_job_reads_what_was_uploaded_into_data_and_cannot_write_there(api, owner, local_cluster, stop_all):
    client = api(owner)
    put = client.put(files_url("data", "mnist/train.csv"), b"x,y\n1,2\n", content_type="application/octet-stream")
    assert put.status_code == 201, put.content
    spec = {"name": "reads-data", "framework": "batch", "command": READER,
            "roles": {"main": {"cpu": "0.5", "memory": "256Mi"}}}  # fmt: skip
    response = client.post("/api/v1/jobs/", json.dumps(spec), content_type="application/json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    deadline = time.monotonic() + 90
    while not job.is_final:
        assert time.monotonic() < deadline, (job.state, job.message)
        workers.cluster_sync(local_cluster)  # what the scheduler's sync passes do
        time.sleep(0.2)
        job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCESS, job.message
    log = storage.task_log_path(storage_root(), job.public_id, "main-0").read_text()
    assert log == "x,y\n1,2\ndata_dir read-only\ndata_dir read-only\n"
    assert (data_of("owner") / "mnist" / "train.csv").read_bytes() == b"x,y\n1,2\n"
    assert not (data_of("owner") / "new").exists()
    # What the task was told matches what the API wrote into.
    assert client.get(files_url("data", "mnist/train.csv")).status_code == 200
