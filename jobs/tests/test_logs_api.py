"""The task log API: pages by byte offset (text or JSON), the whole log as a download, who may read it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.base import ObservedState
from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs import workers
from jobs.logs_api import tail_offset, utf8_complete
from jobs.models import Job

LOG = "".join(f"line {i}\n" for i in range(1, 101)).encode()


@pytest.fixture
def logged_job(fake_backend, submit, owner) -> Job:
    """A running job on the fake backend whose master-0 has LOG written."""
    job = submit(owner)
    fake_backend.logs[(job.public_id, "master-0")] = LOG
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    return job


def url(job: Job, task: str = "master-0", tail: str = "") -> str:
    return f"/api/v1/jobs/{job.public_id}/tasks/{task}/log/{tail}"


def test_pages_follow_next_offset_without_a_gap_or_a_repeat(api, logged_job, owner):
    client = api(owner)
    collected, offset, pages = b"", 0, 0
    while True:
        response = client.get(url(logged_job), {"offset": offset, "limit": 97})
        assert response.status_code == 200
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response["X-Task-State"] == "pending"
        assert len(response.content) <= 97
        collected += response.content
        pages += 1
        if int(response["X-Next-Offset"]) == offset:
            break
        offset = int(response["X-Next-Offset"])
    assert collected == LOG
    assert pages == len(LOG) // 97 + 2  # the full pages, the short one, then the empty one at the end
    assert response["X-Log-Complete"] == "false"  # the task still runs: more may come


def test_json_form_by_query_or_accept_header(api, logged_job, owner):
    client = api(owner)
    by_query = client.get(url(logged_job), {"offset": 7, "limit": 10, "format": "json"})
    by_header = client.get(url(logged_job), {"offset": 7, "limit": 10}, HTTP_ACCEPT="application/json")
    for response in (by_query, by_header):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json() == {
            "data": LOG[7:17].decode(),
            "offset": 7,
            "next_offset": 17,
            "complete": False,
            "task_state": "pending",
        }


def test_json_pages_cut_at_whole_characters(api, fake_backend, submit, owner):
    job = submit(owner)
    text = "日本語のログ\n".encode()
    fake_backend.logs[(job.public_id, "master-0")] = text
    client = api(owner)
    collected, offset = "", 0
    for _ in range(20):
        body = client.get(url(job), {"offset": offset, "limit": 4, "format": "json"}).json()
        assert "\ufffd" not in body["data"]
        collected += body["data"]
        if body["next_offset"] == offset:
            break
        offset = body["next_offset"]
    assert collected == text.decode()


def test_a_finished_task_log_is_complete_at_its_end(api, fake_backend, logged_job, owner):
    fake_backend.set_state(logged_job.public_id, ObservedState.SUCCEEDED, exit_code=0)
    workers.cluster_sync(fake_backend.cluster)
    client = api(owner)
    middle = client.get(url(logged_job), {"offset": 0, "limit": 10, "format": "json"}).json()
    assert middle["complete"] is False  # ended, but there is more to read
    last = client.get(url(logged_job), {"offset": len(LOG) - 10, "limit": 10, "format": "json"}).json()
    assert last == {
        "data": LOG[-10:].decode(),
        "offset": len(LOG) - 10,
        "next_offset": len(LOG),
        "complete": True,
        "task_state": "succeeded",
    }
    text = client.get(url(logged_job), {"offset": len(LOG)})
    assert (text.content, text["X-Next-Offset"], text["X-Log-Complete"]) == (b"", str(len(LOG)), "true")


def test_download_is_the_whole_log_as_an_attachment(api, logged_job, owner):
    response = api(owner).get(url(logged_job, tail="download/"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{logged_job.public_id}-master-0.log"'
    assert b"".join(response.streaming_content) == LOG


def test_who_may_read_a_log(api, people, logged_job):
    expected = {"owner": 200, "mate": 200, "team_admin": 200, "staff": 200, "outsider": 404, None: 401}
    for who, status in expected.items():
        for tail in ("", "download/"):
            response = api(people.get(who)).get(url(logged_job, tail=tail))
            assert response.status_code == status, (who, tail)
            if status == 200:
                content = b"".join(response.streaming_content) if response.streaming else response.content
                assert content == LOG
            else:
                assert b"line 1" not in response.content


@pytest.mark.parametrize("tail", ["", "download/"])
def test_a_task_index_that_is_not_ascii_digits_is_404(api, logged_job, owner, tail):
    for task in ("worker-²", "worker-" + "9" * 30):
        response = api(owner).get(url(logged_job, task=task, tail=tail), HTTP_ACCEPT="application/json")
        assert response.status_code == 404, (task, response.content)


@pytest.mark.parametrize("tail", ["", "download/"])
def test_a_bad_task_name_is_404_with_the_tasks_it_has(api, logged_job, owner, tail):
    response = api(owner).get(url(logged_job, task="worker-9", tail=tail), HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"Job {logged_job.public_id} has no task 'worker-9'; its tasks: master-0, worker-0, worker-1."
    )
    text = api(owner).get(url(logged_job, task="master", tail=tail))
    assert text.status_code == 404 and b"has no task 'master'" in text.content


def test_bad_offsets_are_refused_with_the_field(api, logged_job, owner):
    response = api(owner).get(url(logged_job), {"offset": "-3", "format": "json"})
    assert response.status_code == 400
    assert response.json() == {"offset": ["must not be negative"]}
    response = api(owner).get(url(logged_job), {"limit": "ten", "format": "json"})
    assert response.status_code == 400 and "limit" in response.json()


@pytest.mark.slow
def test_the_log_of_a_real_local_task_is_its_file(api, owner, django_capture_on_commit_callbacks):
    cluster = Cluster.objects.create(name="local", kind="local", is_default=True, settings={"stop_grace": 1})
    spec = {
        "name": "printer",
        "framework": "batch",
        "command": "seq 1 3000",
        "roles": {"main": {"replicas": 1, "cpu": "250m", "memory": "128Mi"}},
    }
    client = api(owner)
    with django_capture_on_commit_callbacks(execute=True):
        public_id = client.post("/api/v1/jobs/", spec, format="json").json()["id"]
    job = Job.objects.get(public_id=public_id)
    deadline = time.monotonic() + 15
    while not job.is_final:
        assert time.monotonic() < deadline
        workers.cluster_sync(cluster)
        job.refresh_from_db()
        time.sleep(0.05)
    path = storage.task_log_path(Path(settings.EASYAI_STORAGE_ROOT), public_id, "main-0")
    whole = path.read_bytes()
    assert whole == "".join(f"{i}\n" for i in range(1, 3001)).encode()

    response = client.get(url(job, task="main-0"), {"offset": 100, "limit": 50})
    assert response.content == whole[100:150] and response["X-Next-Offset"] == "150"
    assert response["X-Task-State"] == "succeeded" and response["X-Log-Complete"] == "false"
    download = client.get(url(job, task="main-0", tail="download/"))
    assert b"".join(download.streaming_content) == whole
    # The socket's first offset when no offset is asked: where the last 1,000 lines begin.
    assert whole[tail_offset(cluster.backend(), public_id, "main-0") :] == whole[whole.index(b"\n2001\n") + 1 :]


@pytest.mark.parametrize(
    ("data", "whole"),
    [(b"", 0), (b"abc", 3), ("é".encode(), 2), ("é".encode()[:1], 0), (b"a" + "€".encode()[:2], 1), (b"\xff", 1)],
)
def test_utf8_complete_holds_back_only_a_cut_character(data, whole):
    assert utf8_complete(data) == whole
