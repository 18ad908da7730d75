"""Job outputs through the API: list, browse, download, zip; only people who may view the job."""

from __future__ import annotations

import io
import zipfile

import pytest

from clusters.backends.contract import storage
from files.tests.conftest import ALL_BYTES, body, snapshot, storage_root
from jobs.models import Job


def outputs_url(job: Job, path: str = "") -> str:
    return f"/api/v1/jobs/{job.public_id}/outputs/{path}"


def test_the_outputs_list_names_each_output_and_each_tasks_summary(api, owner, job):
    response = api(owner).get(outputs_url(job))
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert [o["path"] for o in outputs] == [
        "model_dir",
        "summary_dir/master-0",
        "summary_dir/worker-0",
        "log_dir",
        "share_dir",
    ]
    by_path = {o["path"]: o for o in outputs}
    assert by_path["model_dir"]["exists"] is True
    assert by_path["share_dir"]["exists"] is False
    assert by_path["summary_dir/worker-0"] == {
        **by_path["summary_dir/worker-0"],
        "output": "summary_dir",
        "task": "worker-0",
        "url": f"/api/v1/jobs/{job.public_id}/outputs/summary_dir/worker-0/",
        "archive_url": f"/api/v1/jobs/{job.public_id}/outputs/summary_dir/worker-0/?archive=zip",
    }


def test_the_outputs_list_costs_a_fixed_number_of_queries(api, owner, job, django_assert_max_num_queries):
    client = api(owner)
    # token, memberships, object grants, job, tasks (+ the content type, once per process)
    with django_assert_max_num_queries(6):
        assert client.get(outputs_url(job)).status_code == 200


def test_summary_dir_lists_the_tasks_and_each_tasks_files(api, owner, job):
    client = api(owner)
    tasks = client.get(outputs_url(job, "summary_dir/")).json()
    assert [(e["name"], e["type"], e["path"]) for e in tasks["entries"]] == [
        ("master-0", "dir", "summary_dir/master-0"),
        ("worker-0", "dir", "summary_dir/worker-0"),
    ]
    files = client.get(outputs_url(job, "summary_dir/worker-0/")).json()
    assert files["path"] == "summary_dir/worker-0"
    assert [(e["name"], e["path"]) for e in files["entries"]] == [("events.out", "summary_dir/worker-0/events.out")]
    assert body(client.get(outputs_url(job, "summary_dir/worker-0/events.out"))) == b"events of worker-0"
    assert client.get(outputs_url(job, "summary_dir/chief-0/")).status_code == 404


def test_a_task_found_only_on_disk_still_has_its_summary(api, owner, job):
    summary = storage.output_dir(storage_root(), job.public_id, "summary_dir", "evaluator-0")
    summary.mkdir(parents=True)
    (summary / "x").write_text("x")
    assert "summary_dir/evaluator-0" in [o["path"] for o in api(owner).get(outputs_url(job)).json()["outputs"]]
    assert body(api(owner).get(outputs_url(job, "summary_dir/evaluator-0/x"))) == b"x"


def test_browse_and_download_model_dir(api, owner, job):
    client = api(owner)
    listing = client.get(outputs_url(job, "model_dir/")).json()
    assert listing["job"] == job.public_id
    assert [(e["name"], e["type"], e["path"]) for e in listing["entries"]] == [
        ("checkpoints", "dir", "model_dir/checkpoints"),
        ("empty", "dir", "model_dir/empty"),
        ("model.bin", "file", "model_dir/model.bin"),
    ]
    download = client.get(outputs_url(job, "model_dir/model.bin"))
    assert download["Content-Disposition"].startswith("attachment")
    assert body(download) == ALL_BYTES
    assert body(client.get(outputs_url(job, "log_dir/master-0.log"))) == b"epoch 1\n"


def test_model_dir_downloads_as_a_zip(api, owner, job):
    response = api(owner).get(outputs_url(job, "model_dir/") + "?archive=zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"{job.public_id}-model_dir.zip" in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["checkpoints/step-1.pt", "empty/", "model.bin"]
        assert archive.read("model.bin") == ALL_BYTES


def test_all_summaries_and_all_outputs_download_as_zips(api, owner, job):
    client = api(owner)
    with zipfile.ZipFile(io.BytesIO(body(client.get(outputs_url(job, "summary_dir/") + "?archive=zip")))) as archive:
        assert sorted(archive.namelist()) == ["master-0/", "master-0/events.out", "worker-0/", "worker-0/events.out"]
    with zipfile.ZipFile(io.BytesIO(body(client.get(outputs_url(job) + "?archive=zip")))) as archive:
        names = set(archive.namelist())
    assert {"model_dir/model.bin", "summary_dir/master-0/events.out", "log_dir/master-0.log"} <= names
    assert not any(name.startswith("share_dir") for name in names)  # never written


def test_a_file_cannot_be_zipped_and_another_archive_kind_is_refused(api, owner, job):
    client = api(owner)
    assert client.get(outputs_url(job, "model_dir/model.bin") + "?archive=zip").status_code == 400
    assert client.get(outputs_url(job, "model_dir/") + "?archive=tar").json() == {
        "archive": ["Only archive=zip is supported."]
    }


@pytest.mark.parametrize(
    "who,expected", [("owner", 200), ("mate", 200), ("team_admin", 200), ("staff", 200), ("outsider", 404)]
)
def test_who_may_read_a_jobs_outputs(api, people, job, who, expected):
    client = api(people[who])
    assert client.get(outputs_url(job)).status_code == expected
    assert client.get(outputs_url(job, "model_dir/")).status_code == expected
    download = client.get(outputs_url(job, "model_dir/model.bin"))
    assert download.status_code == expected
    if expected == 200:
        assert body(download) == ALL_BYTES
    assert client.get(outputs_url(job, "model_dir/") + "?archive=zip").status_code == expected


def test_anonymous_gets_401(api, job):
    assert api(None).get(outputs_url(job)).status_code == 401
    assert api(None).get(outputs_url(job, "model_dir/model.bin")).status_code == 401


def test_an_unknown_or_deleted_job_is_404(api, owner, job):
    assert api(owner).get("/api/v1/jobs/j-00000000/outputs/").status_code == 404
    Job.objects.filter(pk=job.pk).update(deleted=True)
    assert api(owner).get(outputs_url(job)).status_code == 404


def test_outputs_are_read_only(api, owner, job):
    client = api(owner)
    before = snapshot(storage_root())
    assert client.put(outputs_url(job, "model_dir/x"), b"x", content_type="application/octet-stream").status_code == 405
    assert client.delete(outputs_url(job, "model_dir/model.bin")).status_code == 405
    assert client.post(outputs_url(job, "model_dir/"), {}).status_code == 405
    assert snapshot(storage_root()) == before


@pytest.mark.parametrize(
    "path",
    [
        "model_dir/../../notebook/owner/",
        "model_dir/%2e%2e/%2e%2e/",  # decoded by Django into ".."
        "summary_dir/%2E%2E/model_dir/model.bin",
        "/etc/passwd",  # outputs//etc/passwd: an absolute path
        "model_dir/bad%00name",
    ],
)
def test_paths_leaving_an_output_are_refused(api, owner, job, path):
    response = api(owner).get(outputs_url(job, path))
    assert response.status_code == 400
    assert list(response.json()) == ["path"]


def test_a_doubled_slash_stays_inside_the_output(api, owner, job):
    # model_dir//etc/passwd is model_dir/etc/passwd: inside, and not there.
    assert api(owner).get(outputs_url(job, "model_dir//etc/passwd")).status_code == 404


def test_an_unknown_output_is_404(api, owner, job):
    assert api(owner).get(outputs_url(job, "data_dir/")).status_code == 404


def test_a_symlink_in_model_dir_pointing_out_is_refused_and_left_out_of_zips(api, owner, job, outside):
    model = storage.output_dir(storage_root(), job.public_id, "model_dir")
    (model / "leak").symlink_to(outside / "secret.txt")
    (model / "leakdir").symlink_to(outside, target_is_directory=True)
    client = api(owner)
    assert client.get(outputs_url(job, "model_dir/leak")).status_code == 400
    assert client.get(outputs_url(job, "model_dir/leakdir/secret.txt")).status_code == 400
    with zipfile.ZipFile(io.BytesIO(body(client.get(outputs_url(job, "model_dir/") + "?archive=zip")))) as archive:
        assert not any("leak" in name for name in archive.namelist())
        assert b"secret" not in b"".join(archive.read(n) for n in archive.namelist())
