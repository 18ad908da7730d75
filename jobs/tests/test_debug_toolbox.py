"""The debug toolbox on the jobs side: services and holds in the spec, the description, the sync pass, cleanup,
expiry, release (owner, team-mate, team admin, outsider), service readiness, the API and the job page."""

from __future__ import annotations

import html
import http.server
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.backends.base import BackendError, ObservedState
from clusters.backends.contract import storage
from endpoints.origin import endpoint_url
from endpoints.paths import endpoint_path
from jobs import readiness, schedule, services, tasks, workers
from jobs.describe import describe
from jobs.models import Job, JobEvent, Task
from jobs.spec import SpecError, parse, to_yaml, validate
from jobs.state import HOLD_RELEASED, JobState
from jobs.workers.holds import HOLD_EXPIRED

pytestmark = pytest.mark.django_db

TENSORBOARD = {"name": "board", "command": ["tensorboard", "--logdir", "$summary_dir"], "port": 6006, "health": "/"}


def debug_spec(**changes):
    doc = {
        "name": "resnet",
        "framework": "pytorch",
        "image": "pytorch/pytorch:2.3",
        "command": "python train.py",
        "roles": {"master": {"services": [TENSORBOARD]}, "worker": {"replicas": 1}},
        "debug": {"keep_failed": "30m"},
    }
    doc.update(changes)
    return doc


def post(client, doc):
    return client.post("/api/v1/jobs/", json.dumps(doc), content_type="application/json")


@pytest.fixture
def links():
    """The endpoint proxy's links, as the endpoints app gives them to the jobs app."""
    readiness.register_link(
        lambda job_id, task, name: endpoint_url(job_id, task, name, endpoint_path(job_id, task, name))
    )
    yield
    readiness._link.clear()


@pytest.fixture
def held_job(owner, fake_backend, django_capture_on_commit_callbacks):
    """held_job(mode) -> a job whose master's command failed and is held (as the backend reports it), synced."""

    def make(mode: str = "keep_failed", state: str = ObservedState.RUNNING) -> Job:
        with django_capture_on_commit_callbacks(execute=True):
            job = services.job_submit(user=owner, data=debug_spec(debug={mode: "30m"}))
        fake_backend.set_state(job.public_id, ObservedState.RUNNING)
        tasks.sync_cluster(fake_backend.cluster.pk)
        until = (timezone.now() + timedelta(minutes=30)).replace(microsecond=0)
        fake_backend.set_state(job.public_id, state)
        master = fake_backend.states[job.public_id].tasks[0]
        master.held, master.held_until, master.exit_code = mode, until, 3
        tasks.sync_cluster(fake_backend.cluster.pk)
        job.refresh_from_db()
        job.until = until
        return job

    return make


# --- the spec ----------------------------------------------------------------------------------


def test_services_and_debug_normalize_and_round_trip():
    spec = validate(debug_spec(ports={"web": 8080}, debug={"pause_on_failure": 90}))
    assert spec["roles"]["master"]["services"] == [TENSORBOARD]
    assert "services" not in spec["roles"]["worker"]  # only a role that has some carries them
    assert spec["debug"] == {"pause_on_failure": "90s"}
    assert validate(parse(to_yaml(spec))) == spec
    plain = validate(debug_spec(roles={"master": {}}, debug=None))
    assert "debug" not in plain and "services" not in plain["roles"]["master"]


BAD = [
    ({"ports": {"tb": 6006}}, "roles.master.services.0.port", "port 6006 is taken by ports.tb"),
    ({"ports": {"board": 7000}}, "roles.master.services.0.name", "ports.board"),
    (
        {"roles": {"master": {"services": [TENSORBOARD, {**TENSORBOARD, "name": "other"}]}}},
        "roles.master.services.1.port",
        "port 6006 is taken by roles.master.services.0",
    ),
    (
        {"roles": {"master": {"services": [TENSORBOARD, {**TENSORBOARD, "port": 7000}]}}},
        "roles.master.services.1.name",
        "twice",
    ),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "name": "Board_1"}]}}}, "roles.master.services.0.name", ""),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "port": 70000}]}}}, "roles.master.services.0.port", ""),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "command": " "}]}}}, "roles.master.services.0.command", ""),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "command": [1]}]}}}, "roles.master.services.0.command.0", ""),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "health": "healthz"}]}}}, "roles.master.services.0.health", ""),
    ({"roles": {"master": {"services": [{"name": "x", "command": "x"}]}}}, "roles.master.services.0.port", ""),
    ({"roles": {"master": {"services": [{**TENSORBOARD, "restart": 1}]}}}, "roles.master.services.0.restart", ""),
    ({"roles": {"master": {"services": {"board": 1}}}}, "roles.master.services", ""),
    ({"debug": {"keep_failed": "30m", "pause_on_failure": "1h"}}, "debug", "one of"),
    ({"debug": {"keep_failed": "soon"}}, "debug.keep_failed", ""),
    ({"debug": {"pause_on_failure": 0}}, "debug.pause_on_failure", ""),
    ({"debug": "30m"}, "debug", ""),
    ({"debug": {"keep_failed": "2h"}}, "debug.keep_failed", "at most 1h"),  # above the cluster's maximum
]


@pytest.mark.parametrize(("changes", "path", "words"), BAD, ids=[f"{p}-{i}" for i, (_, p, _) in enumerate(BAD)])
def test_bad_services_and_holds_are_refused_by_field_and_nothing_is_recorded(
    api, owner, fake_backend, changes, path, words
):
    response = post(api(owner), debug_spec(**changes))
    assert response.status_code == 400, response.content
    errors = response.json()
    assert path in errors, errors
    assert words in " ".join(errors[path])
    assert not Job.objects.exists() and not Task.objects.exists() and fake_backend.submits() == 0


def test_the_clusters_maximum_hold_comes_from_its_settings(api, owner, fake_backend):
    fake_backend.cluster.settings = {"debug_hold_max": "3h"}
    fake_backend.cluster.save()
    assert post(api(owner), debug_spec(debug={"keep_failed": "2h"})).status_code == 201
    refused = post(api(owner), debug_spec(debug={"pause_on_failure": "4h"}))
    assert refused.status_code == 400
    assert refused.json()["debug.pause_on_failure"] == [
        "must be at most 3h: the longest hold cluster fake allows (its debug_hold_max)"
    ]
    assert Job.objects.count() == 1


def test_the_spec_error_names_the_path_without_a_cluster():
    with pytest.raises(SpecError) as caught:
        validate(debug_spec(ports={"tb": 6006}))
    assert caught.value.errors == {"roles.master.services.0.port": ["port 6006 is taken by ports.tb"]}


# --- the description ---------------------------------------------------------------------------


def test_the_description_carries_each_roles_services_as_named_ports_and_the_hold(owner, fake_backend, submit):
    job = submit(owner, **debug_spec(ports={"web": 8080}, debug={"pause_on_failure": "2m"}))
    master, worker = describe(job).tasks
    assert master.services == [
        {"name": "board", "command": "tensorboard --logdir '$summary_dir'", "port": 6006, "health": "/"}
    ]
    assert master.ports == {"web": 8080, "board": 6006} and worker.ports == {"web": 8080}
    assert worker.services == []
    assert (
        (master.hold_mode, master.hold_seconds) == (worker.hold_mode, worker.hold_seconds) == ("pause_on_failure", 120)
    )
    assert fake_backend.jobs[job.public_id].tasks[0].services == master.services


# --- holds in the sync pass, cleanup, expiry -------------------------------------------------------


def test_keep_failed_fails_the_job_and_keeps_it_until_released(
    held_job, fake_backend, mate, team_admin, settings, django_capture_on_commit_callbacks
):
    settings.EASYAI_CLEANUP_AFTER = 0  # the cluster would forget a finished job at once
    job = held_job("keep_failed")
    assert job.state == JobState.FAILED and job.held_mode == "keep_failed" and job.held_until == job.until
    assert "kept for debugging until" in job.message
    master = job.tasks.get(role="master")
    assert (master.state, master.exit_code) == (Task.State.FAILED, 3)
    # Its cleanup waits for the hold, however the cleanup comes.
    assert job.pk not in workers.cleanups_due()
    tasks.cleanup_job(job.pk)
    assert ("delete", job.public_id) not in fake_backend.calls
    job.refresh_from_db()
    assert not job.cleaned_up

    # A team-mate may not release it; the team admin may.
    with pytest.raises(PermissionDenied):
        services.job_release_hold(job=job, actor=mate)
    job.refresh_from_db()
    assert job.held_until == job.until and ("release_hold", job.public_id) not in fake_backend.calls
    with django_capture_on_commit_callbacks(execute=True):
        services.job_release_hold(job=job, actor=team_admin)
    job.refresh_from_db()
    assert (job.held_mode, job.held_until, job.cleaned_up) == ("", None, True)
    assert ("release_hold", job.public_id) in fake_backend.calls and ("delete", job.public_id) in fake_backend.calls
    event = job.events.get(reason=HOLD_RELEASED)
    assert event.actor == team_admin and event.from_state == event.to_state == JobState.FAILED


def test_a_backend_that_reports_the_kept_job_failed_is_recorded_the_same(held_job):
    job = held_job("keep_failed", state=ObservedState.FAILED)
    assert job.state == JobState.FAILED and job.held_mode == "keep_failed" and job.held_until == job.until


def test_pause_on_failure_keeps_the_job_running_shown_failed_and_held(held_job, owner, fake_backend, api, client):
    job = held_job("pause_on_failure", state=ObservedState.FAILED)
    assert job.state == JobState.RUNNING and job.held_mode == "pause_on_failure"
    master = job.tasks.get(role="master")
    assert (master.state, master.exit_code, master.reason) == (Task.State.RUNNING, 3, "held")
    listed = api(owner).get("/api/v1/jobs/").json()["results"][0]
    assert listed["state_label"] == "failed, held for debugging" and listed["held_mode"] == "pause_on_failure"
    client.force_login(owner)
    states = client.get("/jobs/states/", {"id": job.public_id}).json()["jobs"][job.public_id]
    assert states == {"state": "running", "label": "failed, held for debugging"}
    assert "failed, held for debugging" in client.get("/jobs/").content.decode()
    # Released: the held task ends with its command's status and the job fails, and is not held again.
    fake_backend.states[job.public_id].tasks[0].held = "pause_on_failure"  # the backend is slow to say it ended
    fake_backend.states[job.public_id].tasks[0].held_until = job.until
    fake_backend.states[job.public_id].state = ObservedState.RUNNING
    services.job_release_hold(job=job, actor=owner)
    fake_backend.states[job.public_id].tasks[0].held = "pause_on_failure"  # still reported held for a pass
    fake_backend.states[job.public_id].tasks[0].held_until = job.until
    fake_backend.states[job.public_id].state = ObservedState.RUNNING
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert (job.state, job.held_until, job.held_mode) == (JobState.RUNNING, None, "")
    fake_backend.release_hold(job.public_id)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.held_until is None


def test_stopping_a_paused_job_ends_its_hold(held_job, owner, django_capture_on_commit_callbacks):
    job = held_job("pause_on_failure")
    with django_capture_on_commit_callbacks(execute=True):
        services.job_stop(job=job, actor=owner)
    job.refresh_from_db()
    assert (job.state, job.held_until, job.held_mode) == (JobState.STOPPED, None, "")


def test_a_hold_that_ran_out_is_ended_by_the_clock_and_the_job_cleaned_up(held_job, fake_backend, settings):
    settings.EASYAI_CLEANUP_AFTER = 0
    job = held_job("keep_failed")
    assert workers.holds_run_out() == []
    Job.objects.filter(pk=job.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    assert workers.holds_run_out() == [job.pk]
    schedule.enqueue_due({})  # the clock's tick: the hold's end is enqueued (and runs inline in tests)
    job.refresh_from_db()
    assert (job.held_until, job.held_mode, job.cleaned_up) == (None, "", True)
    assert job.events.filter(reason=HOLD_EXPIRED).exists()
    assert ("release_hold", job.public_id) in fake_backend.calls and ("delete", job.public_id) in fake_backend.calls
    assert workers.hold_end(job.pk) is False  # a second delivery does nothing


def test_a_hold_whose_time_has_passed_is_not_recorded(owner, fake_backend, submit):
    job = submit(owner, **debug_spec(debug={"pause_on_failure": "1m"}))
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, held="pause_on_failure",
                           held_until=datetime.now(UTC) - timedelta(seconds=5))  # fmt: skip
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.held_until is None


def test_a_quiet_pass_over_a_held_job_reads_nothing_more(held_job, fake_backend):
    held_job("pause_on_failure")
    with CaptureQueriesContext(connection) as first:
        tasks.sync_cluster(fake_backend.cluster.pk)
    with CaptureQueriesContext(connection) as second:
        tasks.sync_cluster(fake_backend.cluster.pk)
    assert len(second) == len(first)
    assert not any("jobs_jobevent" in q["sql"] or '"spec"' in q["sql"] for q in second.captured_queries)


# --- release: who may, and what a refusal leaves -------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("team_admin", 200), ("mate", 403), ("outsider", 404)])
def test_release_through_the_api(held_job, people, api, fake_backend, who, status):
    job = held_job("keep_failed")
    response = api(people[who]).post(f"/api/v1/jobs/{job.public_id}/release/")
    assert response.status_code == status, response.content
    job.refresh_from_db()
    if status == 200:
        assert response.json()["held_until"] is None and job.held_until is None
        assert job.events.get(reason=HOLD_RELEASED).actor == people[who]
    else:
        assert job.held_until == job.until and not JobEvent.objects.filter(reason=HOLD_RELEASED).exists()
        assert ("release_hold", job.public_id) not in fake_backend.calls


def test_release_with_nothing_held_is_409_and_a_failing_cluster_changes_nothing(held_job, owner, api, fake_backend):
    job = held_job("keep_failed")
    fake_backend.fail_release = BackendError("connection refused")
    refused = api(owner).post(f"/api/v1/jobs/{job.public_id}/release/")
    assert refused.status_code == 409 and "connection refused" in refused.json()["detail"]
    job.refresh_from_db()
    assert job.held_until == job.until
    fake_backend.fail_release = None
    assert api(owner).post(f"/api/v1/jobs/{job.public_id}/release/").status_code == 200
    again = api(owner).post(f"/api/v1/jobs/{job.public_id}/release/")
    assert again.status_code == 409 and "Nothing" in again.json()["detail"]
    assert job.events.filter(reason=HOLD_RELEASED).count() == 1


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("team_admin", 302), ("mate", 403), ("outsider", 404)])
def test_release_from_the_job_page(held_job, people, client, who, status):
    job = held_job("keep_failed")
    client.force_login(people[who])
    response = client.post(f"/jobs/{job.public_id}/release/")
    assert response.status_code == status
    job.refresh_from_db()
    assert (job.held_until is None) == (status == 302)


def test_release_is_in_the_openapi_schema(api, owner):
    paths = json.loads(api(owner).get("/api/schema/?format=json").content)["paths"]
    assert "post" in paths["/api/v1/jobs/{id}/release/"]


# --- services: readiness, the API and the page ------------------------------------------------------


class _Status(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self):
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def service_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Status.paths = []
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "ready"), [(404, True), (401, True), (200, True), (503, False)])
def test_a_service_with_a_health_path_is_ready_once_it_answers_below_500(
    owner, fake_backend, submit, service_server, status, ready
):
    _Status.status = status
    job = submit(owner, **debug_spec(roles={"master": {"services": [{**TENSORBOARD, "health": "/ready"}]}}))
    address = f"127.0.0.1:{service_server.server_address[1]}"
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, endpoints={"board": address})
    tasks.sync_cluster(fake_backend.cluster.pk)
    master = job.tasks.get(role="master")
    assert _Status.paths == ["/ready"]
    assert (master.ready_endpoints == ["board"]) is ready
    assert master.ready_address("board") == (address if ready else "")


def test_a_service_without_a_health_path_is_ready_at_once(owner, fake_backend, submit, service_server):
    job = submit(owner, **debug_spec(roles={"master": {"services": [{"name": "shell", "command": "x", "port": 9}]}}))
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, endpoints={"shell": "127.0.0.1:9"})
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert job.tasks.get(role="master").ready_endpoints == ["shell"] and _Status.paths == []


def test_the_api_lists_each_tasks_services_with_their_links(owner, mate, fake_backend, submit, api, links):
    job = submit(owner, **debug_spec(roles={"master": {"services": [{**TENSORBOARD, "health": ""}]}, "worker": {}}))
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, endpoints={"board": "127.0.0.1:6006"})
    tasks.sync_cluster(fake_backend.cluster.pk)
    body = api(mate).get(f"/api/v1/jobs/{job.public_id}/").json()
    url = endpoint_url(job.public_id, "master-0", "board", endpoint_path(job.public_id, "master-0", "board"))
    assert body["services"] == [
        {"task": "master-0", "name": "board", "port": 6006, "health": "", "ready": True, "url": url}
    ]
    assert body["held_mode"] == "" and body["held_until"] is None and body["state_label"] == "running"


def test_the_job_page_shows_the_debug_section(held_job, owner, mate, client, links):
    job = held_job("pause_on_failure")
    client.force_login(owner)
    page = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="job-debug"' in page and 'id="job-hold-countdown"' in page and "job_hold.js" in page
    assert f'data-held-until="{job.until.isoformat()}"' in page
    assert f'action="/jobs/{job.public_id}/release/"' in page and "csrfmiddlewaretoken" in page
    assert "failed, held for debugging" in page
    assert 'id="job-services"' in page and ">board<" in page
    assert f"easyai ssh {job.public_id}/master-0" in page  # the SSH partial, for those who may open a shell
    client.force_login(mate)
    seen_by_mate = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="job-hold-countdown"' in seen_by_mate and "/release/" not in seen_by_mate
    assert "easyai ssh " not in seen_by_mate


def test_a_services_log_opens_from_the_job_page(held_job, owner, client, links):
    """The service's log, beside the task's in the job's log_dir (where the backends write it), one click away."""
    job = held_job("pause_on_failure")
    log = storage.task_log_path(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "master-0")
    service_log = log.with_name("master-0.services") / "board.log"
    service_log.parent.mkdir(parents=True, exist_ok=True)
    service_log.write_text("easyai: starting service board\nTensorBoard 2.16 at http://127.0.0.1:6006/\n")
    client.force_login(owner)
    page = client.get(f"/jobs/{job.public_id}/").content.decode()
    found = re.search(r'href="([^"]*\.services/board\.log[^"]*)"', page)
    assert found, "no link to the service's log"
    response = client.get(html.unescape(found.group(1)))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == service_log.read_bytes()
