"""The notebooks API: who may do what, bad input that changes nothing, and the job API refusing notebook specs."""

from __future__ import annotations

import functools
import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.backends.base import ObservedState
from jobs import workers as job_workers
from jobs.models import Job
from notebooks import services
from notebooks.models import Notebook
from testing.echo_server import Handler

GOOD = {"name": "lab", "cpu": "1", "memory": "1Gi"}


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a call with its after-commit work (the submit worker) done, as in production."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def notebook(fake_backend, people, team, committed) -> Notebook:
    return committed(services.notebook_create, user=people["owner"], team=team, **GOOD)


@functools.cache
def jupyter_address() -> str:
    """Where something answers like a started Jupyter (its /api/status), so the readiness check passes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


def run_it(fake_backend, notebook: Notebook) -> None:
    fake_backend.set_state(notebook.job.public_id, ObservedState.RUNNING, endpoints={"jupyter": jupyter_address()})
    job_workers.cluster_sync(fake_backend.cluster)


def test_owner_creates_a_notebook_that_starts_as_a_notebook_job(api, people, fake_backend, committed):
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", {**GOOD, "lease_hours": 4}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["team"], body["owner"], body["kind"], body["state"]) == (
        "lab", "vision", "owner", "jupyterlab", "starting"
    )  # fmt: skip
    job = Job.objects.get(public_id=body["job"])
    assert job.framework == "notebook" and fake_backend.submits() == 1
    description = fake_backend.jobs[job.public_id]
    (task,) = description.tasks
    assert task.ports == {"jupyter": 8888} and description.oversell == 4.0
    assert '--ServerApp.base_url=/endpoints/"$EASYAI_JOB_ID"/notebook-0/jupyter/' in task.command[-1]
    # No empty token: Jupyter demands the one the local backend gives it (JUPYTER_TOKEN), which the proxy sends.
    assert "--IdentityProvider.token" not in task.command[-1] and "--ip=127.0.0.1" in task.command[-1]
    assert task.env["EASYAI_WORKSPACE_PERSONAL"].endswith("/notebook/owner")
    assert task.env["EASYAI_WORKSPACE_PUBLIC"].endswith("/notebook/public")
    assert task.working_dir == task.env["EASYAI_WORKSPACE_PERSONAL"]
    expires = Notebook.objects.get().expires_at
    assert timedelta(hours=3, minutes=59) < expires - timezone.now() <= timedelta(hours=4)


def test_detail_carries_the_url_once_running(api, people, notebook, fake_backend):
    run_it(fake_backend, notebook)
    body = api(people["owner"]).get(f"/api/v1/notebooks/{notebook.pk}/").json()
    assert body["state"] == "running" and body["can_open"] is True
    assert body["url"] == f"http://localhost:8001/endpoints/{notebook.job.public_id}/notebook-0/jupyter/lab"
    assert api(people["mate"]).get(f"/api/v1/notebooks/{notebook.pk}/").json()["can_open"] is False


@pytest.mark.parametrize(
    ("who", "listed", "detail", "stop", "start", "renew", "delete"),
    [
        ("owner", 1, 200, 200, 409, 200, 204),
        ("mate", 1, 200, 403, 403, 403, 403),
        ("team_admin", 1, 200, 200, 403, 403, 204),
        ("outsider", 0, 404, 404, 404, 404, 404),
        ("anonymous", None, 401, 401, 401, 401, 401),
    ],
)
def test_permission_matrix(
    api, people, notebook, fake_backend, committed, who, listed, detail, stop, start, renew, delete
):
    run_it(fake_backend, notebook)
    client = api(people.get(who))
    url = f"/api/v1/notebooks/{notebook.pk}/"
    response = client.get("/api/v1/notebooks/")
    if listed is None:
        assert response.status_code == 401
    else:
        assert response.json()["count"] == listed
    assert client.get(url).status_code == detail
    # start on a running notebook: the owner is told it runs (409); nobody else may start it at all.
    assert committed(client.post, url + "start/").status_code == start
    assert client.post(url + "renew/", {"lease_hours": 2}, format="json").status_code == renew
    assert committed(client.post, url + "stop/").status_code == stop
    assert committed(client.delete, url).status_code == delete
    exists = Notebook.objects.filter(pk=notebook.pk).exists()
    assert exists == (delete != 204)


def test_stopped_notebook_starts_again_as_a_new_job_and_renew_is_refused_meanwhile(api, people, notebook, committed):
    client = api(people["owner"])
    url = f"/api/v1/notebooks/{notebook.pk}/"
    first = notebook.job.public_id
    assert committed(client.post, url + "stop/").json()["state"] == "stopped"
    assert client.post(url + "renew/").status_code == 409
    assert committed(client.post, url + "stop/").status_code == 409
    body = committed(client.post, url + "start/").json()
    assert body["job"] != first and body["state"] == "starting"
    assert Job.objects.get(public_id=first).reason == "stopped"


def test_renew_extends_the_lease_up_to_the_teams_maximum(api, people, notebook, team):
    team.notebook_max_lease_hours = 12
    team.save()
    client = api(people["owner"])
    url = f"/api/v1/notebooks/{notebook.pk}/renew/"
    response = client.post(url, {"lease_hours": 13}, format="json")
    assert response.status_code == 400 and "lease_hours" in response.json()
    assert "12" in response.json()["lease_hours"][0]
    body = client.post(url, {"lease_hours": 12}, format="json").json()
    assert body["lease_hours"] == 12
    expires = Notebook.objects.get(pk=notebook.pk).expires_at
    assert timedelta(hours=11, minutes=59) < expires - timezone.now() <= timedelta(hours=12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lease_hours": 73}, "lease_hours"),  # the team's default maximum is 72
        ({"lease_hours": 0}, "lease_hours"),
        ({"kind": "emacs"}, "kind"),
        ({"cpu": "lots"}, "cpu"),
        ({"cpu": "0"}, "cpu"),
        ({"memory": "4m"}, "memory"),
        ({"name": "Not A Label"}, "name"),
        ({"cluster": "nowhere"}, "cluster"),
        ({"team": "speech"}, "team"),  # a team the owner is not in
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(api, people, fake_backend, committed, change, field):
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", {**GOOD, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Notebook.objects.exists() and not Job.objects.exists() and fake_backend.submits() == 0


def test_a_name_is_unique_per_owner_in_a_team(api, people, notebook, committed):
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", GOOD, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert committed(api(people["mate"]).post, "/api/v1/notebooks/", GOOD, format="json").status_code == 201


def test_vscode_is_refused_on_a_local_cluster_without_code_server(
    api, people, fake_backend, committed, monkeypatch, settings, tmp_path
):
    # Nothing where the setting points (so neither the environment's install nor PATH is looked at), nor on PATH.
    settings.EASYAI_CODE_SERVER = str(tmp_path / "no-code-server")
    monkeypatch.setenv("PATH", "/nonexistent")
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", {**GOOD, "kind": "vscode"}, format="json")
    assert response.status_code == 400
    assert "code-server" in response.json()["kind"][0] and "notebooks/vscode/install.sh" in response.json()["kind"][0]
    assert not Notebook.objects.exists() and not Job.objects.exists() and fake_backend.submits() == 0


def test_a_local_vscode_notebook_runs_the_code_server_the_setting_names(
    api, people, fake_backend, committed, settings, tmp_path
):
    program = tmp_path / "bin dir" / "code-server"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    settings.EASYAI_CODE_SERVER = str(program)
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", {**GOOD, "kind": "vscode"}, format="json")
    assert response.status_code == 201, response.content
    job = Notebook.objects.get().job
    assert job.spec["command"][-1].startswith(f"exec '{program}' --bind-addr 127.0.0.1:"), job.spec["command"]
    assert job.spec["env"]["SHELL"].endswith(("/bash", "/sh"))  # not the sandbox user's nologin
    # Not executable: absent, and refused.
    program.chmod(0o644)
    response = committed(api(people["owner"]).post, "/api/v1/notebooks/", {**GOOD, "name": "two", "kind": "vscode"},
                         format="json")  # fmt: skip
    assert response.status_code == 400 and "code-server" in response.json()["kind"][0]


@pytest.mark.parametrize("framework", ["notebook", "tensorboard"])
def test_the_job_api_refuses_notebook_and_tensorboard_specs(api, people, fake_backend, framework):
    spec = {"name": "sneaky", "framework": framework, "command": "true", "roles": {framework: {}}}
    response = api(people["owner"]).post("/api/v1/jobs/", spec, format="json")
    assert response.status_code == 400 and "framework" in response.json()
    assert not Job.objects.exists()


def test_notebook_list_query_count_does_not_grow(api, people, team, fake_backend, committed, make_user):
    client = api(people["mate"])
    # Once-per-process and once-a-minute reads and writes (content types, the token's last use): not counted.
    client.get("/api/v1/notebooks/")
    committed(services.notebook_create, user=people["owner"], team=team, name="one", cpu="1", memory="1Gi")
    with CaptureQueriesContext(connection) as one:
        assert client.get("/api/v1/notebooks/").json()["count"] == 1
    for i in range(4):
        committed(services.notebook_create, user=people["owner"], team=team, name=f"more-{i}", cpu="1", memory="1Gi")
    with CaptureQueriesContext(connection) as five:
        assert client.get("/api/v1/notebooks/").json()["count"] == 5
    assert len(five) == len(one)


def test_the_notebooks_page_lists_with_actions_by_role(client, people, notebook, fake_backend):
    run_it(fake_backend, notebook)
    client.force_login(people["owner"])
    page = client.get("/notebooks/").content.decode()
    assert "lab" in page and f"/notebooks/{notebook.pk}/open/" in page and "Renew" in page
    client.force_login(people["mate"])
    page = client.get("/notebooks/").content.decode()
    assert f'id="notebook-{notebook.pk}"' in page
    assert f"/notebooks/{notebook.pk}/open/" not in page and "Renew" not in page
    assert client.get(f"/notebooks/{notebook.pk}/open/").status_code == 403
    client.force_login(people["outsider"])
    assert f'id="notebook-{notebook.pk}"' not in client.get("/notebooks/").content.decode()
    assert client.get(f"/notebooks/{notebook.pk}/open/").status_code == 404
    client.force_login(people["owner"])
    response = client.get(f"/notebooks/{notebook.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "http://localhost:8001" + notebook.path


def test_the_page_form_creates_a_notebook_and_reports_a_bad_lease(client, people, fake_backend, team):
    client.force_login(people["owner"])
    form = {"name": "lab", "kind": "jupyterlab", "cpu": "1", "memory": "1Gi", "gpu": "0", "lease_hours": "99"}
    response = client.post("/notebooks/", form)
    assert response.status_code == 400 and "72" in response.content.decode()
    assert not Notebook.objects.exists()
    response = client.post("/notebooks/", {**form, "lease_hours": "8"})
    assert response.status_code == 302 and Notebook.objects.get().lease_hours == 8


def test_the_scheduler_hook_enqueues_one_scan_every_half_minute(notebook, fake_backend, committed):
    from notebooks import workers

    Notebook.objects.filter(pk=notebook.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert committed(workers.enqueue_due) is True  # the scan runs inline here (django-q2 in sync mode)
    assert committed(workers.enqueue_due) is False
    notebook.job.refresh_from_db()
    assert (notebook.job.state, notebook.job.reason) == ("stopped", "lease_expired")
    assert ("stop", notebook.job.public_id) in fake_backend.calls
