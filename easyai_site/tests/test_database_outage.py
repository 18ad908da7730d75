"""A database that cannot be reached answers 503 with Retry-After, and an action sent meanwhile is refused whole:
nothing of it is recorded, and it takes effect when sent again once the database is back."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
from django.db import connection

from jobs import services as job_services
from jobs.models import Job, JobEvent


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """Point the connection at a database that is not there (a closed port, or a file that cannot be opened)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/easyai/down.sqlite3"
    else:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.fixture
def running_job(transactional_db, fake_backend, owner) -> Job:
    job = job_services.job_submit(
        user=owner,
        data={"name": "long", "framework": "batch", "command": "sleep 1d", "roles": {"main": {}}},
    )
    fake_backend.set_state(job.public_id, "running")
    return job


def test_the_api_answers_503_with_retry_after_and_a_refused_stop_is_not_lost(api, owner, running_job):
    client = api(owner)
    url = f"/api/v1/jobs/{running_job.public_id}/stop/"
    events_before = JobEvent.objects.filter(job=running_job).count()
    state_before = Job.objects.get(pk=running_job.pk).state
    assert state_before not in ("stopped", "success", "failed")

    with database_down():
        down = client.post(url)
        listing = client.get("/api/v1/jobs/")

    assert down.status_code == 503 and int(down["Retry-After"]) > 0
    assert "database is unavailable" in down.json()["detail"]
    assert listing.status_code == 503 and listing["Retry-After"]
    # Refused whole: the job is as it was, with no stop asked and no event.
    job = Job.objects.get(pk=running_job.pk)
    assert job.state == state_before and not job.stop_requested
    assert JobEvent.objects.filter(job=running_job).count() == events_before

    # Back up: the same request now takes effect.
    again = client.post(url)
    assert again.status_code == 200 and again.json()["state"] == "stopped"
    assert Job.objects.get(pk=running_job.pk).stop_requested


def test_pages_answer_503_with_retry_after(client, owner, running_job):
    client.force_login(owner)
    with database_down():
        response = client.get("/jobs/")
    assert response.status_code == 503 and response["Retry-After"]
    assert client.get("/jobs/").status_code == 200
