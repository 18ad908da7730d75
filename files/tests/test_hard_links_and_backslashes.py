"""Hard links are refused as links leading out are; backslashes never enter a file name or a zip."""

from __future__ import annotations

import io
import os
import zipfile

from clusters.backends.contract import storage
from files.tests.conftest import body, files_url, storage_root, workspace
from jobs.models import Job


def outputs_url(job: Job, path: str = "") -> str:
    return f"/api/v1/jobs/{job.public_id}/outputs/{path}"


def test_a_hard_link_in_job_outputs_is_not_served_listed_or_zipped(api, owner, mate, job, outside):
    # What a task can do: give a file it may read (its owner's, the viewers' not) a second name in its outputs.
    model = storage.output_dir(storage_root(), job.public_id, "model_dir")
    os.link(outside / "secret.txt", model / "leak.txt")
    client = api(mate)

    download = client.get(outputs_url(job, "model_dir/leak.txt"))
    assert download.status_code == 400 and b"secret" not in body(download)
    entries = {e["name"]: e for e in client.get(outputs_url(job, "model_dir/")).json()["entries"]}
    assert entries["leak.txt"]["type"] == "other" and entries["leak.txt"]["size"] is None
    assert entries["model.bin"]["type"] == "file"  # files with one name are served as before
    with zipfile.ZipFile(io.BytesIO(body(client.get(outputs_url(job, "model_dir/") + "?archive=zip")))) as archive:
        assert "leak.txt" not in archive.namelist() and "model.bin" in archive.namelist()
        assert b"secret" not in b"".join(archive.read(name) for name in archive.namelist())


def test_a_backslash_in_a_name_is_refused_and_nothing_is_stored(api, owner):
    client = api(owner)
    for name in ("a\\b.txt", "..\\..\\evil.sh", "folder\\"):
        response = client.put(files_url("personal", name), b"data", content_type="application/octet-stream")
        assert response.status_code == 400, name
        assert "backslash" in response.json()["path"][0]
        mkdir = client.put(files_url("personal", name) + "?mkdir=1")
        assert mkdir.status_code == 400
    root = workspace("owner")
    assert not root.exists() or list(root.iterdir()) == []


def test_a_file_a_task_named_with_a_backslash_is_left_out_of_zips(api, owner, job):
    model = storage.output_dir(storage_root(), job.public_id, "model_dir")
    (model / "..\\..\\evil.sh").write_text("rm -rf ~")
    archive_bytes = body(api(owner).get(outputs_url(job, "model_dir/") + "?archive=zip"))
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        assert not any("\\" in name or "evil" in name for name in archive.namelist())
