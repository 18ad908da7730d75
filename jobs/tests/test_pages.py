"""The job pages: who may see and do what, what the pages show, and the submit page's round trips."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs import spec as job_spec
from jobs.models import Experiment, Job, JobEvent
from jobs.state import JobState
from teams.models import Membership

WHO = ["anonymous", "outsider", "owner", "mate", "team_admin", "staff"]
LOGIN = "login"  # pages send anonymous people to the sign-in page


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def person(people, who):
    return None if who == "anonymous" else people[who]


def assert_status(response, expected) -> None:
    if expected == LOGIN:
        assert response.status_code == 302, response.status_code
        assert response.url.startswith("/accounts/login/")
    else:
        assert response.status_code == expected, (response.status_code, response.content[:500])


@pytest.fixture
def job(people, fake_backend, submit):
    """The owner's job in the Vision team, handed to its backend (pending)."""
    return submit(people["owner"], experiment="baseline")


# --- the permission matrix ---------------------------------------------------------------------

# (method, url template, body, {who: expected}); "*" is everyone not named.
VIEWS = [
    ("get", "/experiments/", None, {"anonymous": LOGIN, "*": 200}),
    ("get", "/experiments/{experiment}/", None, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("get", "/jobs/", None, {"anonymous": LOGIN, "*": 200}),
    ("get", "/jobs/{job}/", None, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("get", "/jobs/new/", None, {"anonymous": LOGIN, "*": 200}),
    ("get", "/jobs/new/?from={job}", None, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("get", "/jobs/states/?id={job}", None, {"anonymous": LOGIN, "*": 200}),
    ("post", "/jobs/new/form-to-yaml/", {"name": "a", "framework": "pytorch"}, {"anonymous": LOGIN, "*": 200}),
    ("post", "/jobs/new/yaml-to-form/", {"yaml": "name: a"}, {"anonymous": LOGIN, "*": 400}),
]


def _expected(table: dict, who: str):
    return table.get(who, table["*"])


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", VIEWS, ids=lambda case: f"{case[0]} {case[1]}")
def test_page_permissions(case, who, people, job):
    method, url, body, table = case
    url = url.format(job=job.public_id, experiment=job.experiment_id)
    client = client_for(person(people, who))
    response = client.get(url) if method == "get" else client.post(url, body)
    assert_status(response, _expected(table, who))


ACTIONS = {
    # An outsider does not learn the job exists; a team-mate sees it but may not change it.
    "stop": {"anonymous": LOGIN, "outsider": 404, "mate": 403, "*": 302},
    "delete": {"anonymous": LOGIN, "outsider": 404, "mate": 403, "*": 302},
    # A re-run is a new job of the re-runner's own, so any member of the team may start one.
    "rerun": {"anonymous": LOGIN, "outsider": 404, "*": 302},
}


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_action_permissions(action, who, people, job, django_capture_on_commit_callbacks):
    user = person(people, who)
    expected = _expected(ACTIONS[action], who)
    jobs_before = Job.objects.count()
    events_before = JobEvent.objects.filter(job=job).count()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).post(f"/jobs/{job.public_id}/{action}/")
    assert_status(response, expected)
    job.refresh_from_db()
    if expected != 302:
        # Refused: every row is as it was.
        assert (job.state, job.deleted, job.stop_requested) == (JobState.PENDING, False, False)
        assert JobEvent.objects.filter(job=job).count() == events_before
        assert Job.objects.count() == jobs_before
    elif action == "stop":
        assert job.state == JobState.STOPPED
        assert JobEvent.objects.filter(job=job, to_state=JobState.STOPPED, actor=user).exists()
    elif action == "delete":
        assert job.deleted and job.state == JobState.STOPPED
    else:
        rerun = Job.objects.get(rerun_of=job)
        assert rerun.owner == user and rerun.spec == job.spec
        assert response.url == f"/jobs/{rerun.public_id}/"


# Submitting into the Vision team, and creating an experiment in one's current team (the outsider's is Speech).
SUBMIT = {"anonymous": LOGIN, "outsider": 400, "*": 302}
CREATE_EXPERIMENT = {"anonymous": LOGIN, "staff": 400, "*": 302}  # staff belong to no team


@pytest.mark.parametrize("who", WHO)
def test_submit_page_permissions(who, people, fake_backend):
    user = person(people, who)
    text = (
        "name: matrix\nteam: vision\nframework: pytorch\nimage: img\ncommand: python train.py\nroles:\n  master: {}\n"
    )
    response = client_for(user).post("/jobs/new/", {"yaml": text, "source": "yaml", "action": "submit"})
    expected = _expected(SUBMIT, who)
    assert_status(response, expected)
    if expected == 302:
        job = Job.objects.get()
        assert (job.owner, job.team.slug) == (user, "vision")
        assert response.url == f"/jobs/{job.public_id}/"
    else:
        assert not Job.objects.exists()
    if expected == 400:
        assert 'id="spec-errors"' in response.content.decode() and "<code>team</code>" in response.content.decode()


@pytest.mark.parametrize("who", WHO)
def test_create_experiment_page_permissions(who, people, team, other_team):
    user = person(people, who)
    response = client_for(user).post("/experiments/", {"name": "ablation"})
    expected = _expected(CREATE_EXPERIMENT, who)
    assert_status(response, expected)
    created = Experiment.objects.filter(name="ablation").first()
    if expected == 302:
        # Created in the user's own current team, never in one they do not belong to.
        assert created.owner == user
        assert created.team == (other_team if who == "outsider" else team)
        assert response.url == f"/experiments/{created.pk}/"
    else:
        assert created is None


def test_actions_need_post(people, job):
    client = client_for(people["owner"])
    for action in ("stop", "delete", "rerun"):
        assert client.get(f"/jobs/{job.public_id}/{action}/").status_code == 405
    job.refresh_from_db()
    assert job.state == JobState.PENDING and not job.deleted


@pytest.mark.parametrize(
    ("who", "stop", "delete", "rerun"),
    [
        ("owner", True, True, True),
        ("mate", False, False, True),
        ("team_admin", True, True, True),
        ("staff", True, True, True),
    ],
)
def test_job_page_shows_only_the_allowed_buttons(who, stop, delete, rerun, people, job):
    html = client_for(people[who]).get(f"/jobs/{job.public_id}/").content.decode()
    assert (f'action="/jobs/{job.public_id}/stop/"' in html) is stop
    assert (f'action="/jobs/{job.public_id}/delete/"' in html) is delete
    assert (f'action="/jobs/{job.public_id}/rerun/"' in html) is rerun


def test_view_grant_outside_the_team_sees_but_cannot_rerun(people, job, make_user):
    from guardian.shortcuts import assign_perm

    guest = make_user("guest")
    assign_perm("jobs.view_job", guest, job)
    client = client_for(guest)
    html = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert job.public_id in html and "/rerun/" not in html
    assert client.post(f"/jobs/{job.public_id}/rerun/").status_code == 403
    assert not Job.objects.filter(rerun_of=job).exists()


# --- actions -------------------------------------------------------------------------------


def test_owner_stops_the_job_from_its_page(people, job, fake_backend, django_capture_on_commit_callbacks):
    owner = people["owner"]
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/jobs/{job.public_id}/stop/", follow=True)
    job.refresh_from_db()
    assert job.state == JobState.STOPPED and job.finished_at is not None
    event = JobEvent.objects.get(job=job, to_state=JobState.STOPPED)
    assert (event.from_state, event.actor) == (JobState.PENDING, owner)
    assert ("stop", job.public_id) in fake_backend.calls  # the worker asked the backend too
    page = response.content.decode()
    assert "stopped" in page and "by owner" in page
    assert f'action="/jobs/{job.public_id}/stop/"' not in page  # nothing left to stop


def test_stopping_an_ended_job_is_refused_with_a_message_and_changes_nothing(people, job):
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCESS)
    events = JobEvent.objects.filter(job=job).count()
    response = client_for(people["owner"]).post(f"/jobs/{job.public_id}/stop/", follow=True)
    assert response.status_code == 200
    assert "The job was not stopped" in response.content.decode()
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS and not job.stop_requested
    assert JobEvent.objects.filter(job=job).count() == events


def test_delete_hides_the_job_and_goes_to_the_list(people, job):
    response = client_for(people["team_admin"]).post(f"/jobs/{job.public_id}/delete/")
    assert response.status_code == 302 and response.url == "/jobs/"
    assert client_for(people["owner"]).get(f"/jobs/{job.public_id}/").status_code == 404
    assert job.public_id not in client_for(people["owner"]).get("/jobs/").content.decode()


def test_rerun_refused_by_the_services_shows_a_message(people, job, fake_backend):
    fake_backend.problems = ["no such GPU type here"]
    response = client_for(people["mate"]).post(f"/jobs/{job.public_id}/rerun/", follow=True)
    assert response.redirect_chain[-1][0] == f"/jobs/{job.public_id}/"
    assert "no such GPU type here" in response.content.decode()
    assert not Job.objects.filter(rerun_of=job).exists()


# --- the job page ---------------------------------------------------------------------------


def test_job_page_shows_summary_tasks_events_spec_and_the_panels_place(people, job):
    html = client_for(people["mate"]).get(f"/jobs/{job.public_id}/").content.decode()
    for text in (job.public_id, "resnet", "vision", "baseline", "owner", "fake", "PyTorch"):
        assert text in html
    for task in ("master-0", "worker-0", "worker-1"):
        assert task in html
    assert 'id="task-panels"' in html
    assert "submitted" in html  # the queued -> pending event's reason
    assert "image: pytorch/pytorch:2.3" in html  # the spec as YAML
    assert 'id="why-waiting"' in html  # pending: why is it waiting


def test_job_page_has_no_waiting_line_once_it_runs(people, job):
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    html = client_for(people["owner"]).get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="why-waiting"' not in html


def test_job_page_links_the_job_it_reruns(people, job, submit):
    rerun = services.job_rerun(job=job, user=people["mate"])
    html = client_for(people["owner"]).get(f"/jobs/{rerun.public_id}/").content.decode()
    assert f'href="/jobs/{job.public_id}/"' in html
    original = client_for(people["owner"]).get(f"/jobs/{job.public_id}/").content.decode()
    assert f'href="/jobs/{rerun.public_id}/"' in original


def test_unknown_job_is_404(people, fake_backend):
    assert client_for(people["owner"]).get("/jobs/j-00000000/").status_code == 404
    assert client_for(people["owner"]).get("/jobs/nonsense/").status_code == 404


# --- the jobs list ---------------------------------------------------------------------------


def _bulk_jobs(count: int, *, owner, team, cluster, experiment=None, state=JobState.RUNNING) -> list[Job]:
    spec = job_spec.validate(
        {"name": "bulk", "framework": "pytorch", "image": "img", "command": "true", "roles": {"master": {}}}
    )
    return Job.objects.bulk_create(
        [
            Job(
                name=f"bulk-{i}",
                team=team,
                owner=owner,
                cluster=cluster,
                experiment=experiment,
                framework="pytorch",
                spec=spec,
                state=state,
            )
            for i in range(count)
        ]
    )


def _list_queries(client, url="/jobs/") -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_jobs_list_runs_the_same_queries_for_5_jobs_as_for_500(people, team, fake_backend):
    owner = people["owner"]
    experiment = Experiment.objects.create(team=team, name="exp", owner=owner)
    client = client_for(owner)
    _bulk_jobs(5, owner=owner, team=team, cluster=fake_backend.cluster, experiment=experiment)
    client.get("/jobs/")  # warm per-process caches (content types, sessions) out of the count
    five = _list_queries(client)
    _bulk_jobs(495, owner=owner, team=team, cluster=fake_backend.cluster, experiment=experiment)
    five_hundred = _list_queries(client)
    assert five == five_hundred
    html = client.get("/jobs/").content.decode()
    assert html.count("data-job-id=") == 50 and "500 jobs" in html


def test_jobs_list_paginates_by_fifty(people, team, fake_backend):
    _bulk_jobs(51, owner=people["owner"], team=team, cluster=fake_backend.cluster)
    client = client_for(people["owner"])
    assert client.get("/jobs/").content.decode().count("data-job-id=") == 50
    second = client.get("/jobs/?page=2").content.decode()
    assert second.count("data-job-id=") == 1
    assert "Page 2 of 2" in second


def test_jobs_list_defaults_to_the_current_team_and_can_show_all(people, team, other_team, fake_backend):
    mate = people["mate"]
    Membership.objects.create(team=other_team, user=mate, role=Membership.Role.MEMBER)
    (vision_job,) = _bulk_jobs(1, owner=mate, team=team, cluster=fake_backend.cluster)
    (speech_job,) = _bulk_jobs(1, owner=mate, team=other_team, cluster=fake_backend.cluster)
    client = client_for(mate)
    html = client.get("/jobs/").content.decode()  # the current team is the first one: speech
    assert speech_job.public_id in html and vision_job.public_id not in html
    html = client.get("/jobs/?team=all").content.decode()
    assert speech_job.public_id in html and vision_job.public_id in html
    html = client.get("/jobs/?team=vision").content.decode()
    assert vision_job.public_id in html and speech_job.public_id not in html


def test_jobs_list_never_shows_other_teams_jobs(people, team, other_team, fake_backend):
    (theirs,) = _bulk_jobs(1, owner=people["outsider"], team=other_team, cluster=fake_backend.cluster)
    client = client_for(people["owner"])
    for url in ("/jobs/", "/jobs/?team=all", "/jobs/?team=speech", f"/jobs/?q={theirs.public_id}&team=all"):
        assert f'data-job-id="{theirs.public_id}"' not in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=failed", {"failed-one"}),
        ("state=running,failed", {"failed-one", "running-one"}),
        ("q=running", {"running-one"}),
        ("owner=mate", {"failed-one"}),
        ("experiment=exp", {"running-one"}),
        ("framework=tensorflow", set()),
        ("cluster=fake", {"failed-one", "running-one"}),
        ("ordering=bogus", {"failed-one", "running-one"}),
        ("experiment=%C2%B2", set()),  # "²": a digit to str.isdigit, not to int()
        ("experiment=" + "9" * 30, set()),  # beyond any id column
    ],
)
def test_jobs_list_filters(query, expected, people, team, fake_backend):
    experiment = Experiment.objects.create(team=team, name="exp", owner=people["owner"])
    running = _bulk_jobs(1, owner=people["owner"], team=team, cluster=fake_backend.cluster, experiment=experiment)
    failed = _bulk_jobs(1, owner=people["mate"], team=team, cluster=fake_backend.cluster, state=JobState.FAILED)
    Job.objects.filter(pk=running[0].pk).update(name="running-one")
    Job.objects.filter(pk=failed[0].pk).update(name="failed-one")
    html = client_for(people["owner"]).get(f"/jobs/?{query}").content.decode()
    shown = set(re.findall(r">((?:running|failed)-one)</a>", html))
    assert shown == expected


def _names_shown(html: str) -> list[str]:
    return re.findall(r'<a href="/jobs/j-[a-z0-9]{8}/">([a-z]+-one)</a>', html)


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("", ["charlie-one", "bravo-one", "alpha-one"]),  # newest first
        ("-created_at", ["charlie-one", "bravo-one", "alpha-one"]),
        ("created_at", ["alpha-one", "bravo-one", "charlie-one"]),
        ("name", ["alpha-one", "bravo-one", "charlie-one"]),
        ("-name", ["charlie-one", "bravo-one", "alpha-one"]),
        ("state", ["charlie-one", "alpha-one", "bravo-one"]),  # failed, pending, running
    ],
)
def test_jobs_list_sorts_by_the_chosen_ordering(ordering, expected, people, team, fake_backend):
    owner = people["owner"]
    for name, state in (("alpha-one", JobState.PENDING), ("bravo-one", JobState.RUNNING)):
        (made,) = _bulk_jobs(1, owner=owner, team=team, cluster=fake_backend.cluster, state=state)
        Job.objects.filter(pk=made.pk).update(name=name)
    (made,) = _bulk_jobs(1, owner=owner, team=team, cluster=fake_backend.cluster, state=JobState.FAILED)
    Job.objects.filter(pk=made.pk).update(name="charlie-one")
    html = client_for(owner).get(f"/jobs/?ordering={ordering}").content.decode()
    assert _names_shown(html) == expected
    chosen = ordering or "-created_at"
    assert re.search(rf'<option value="{re.escape(chosen)}" selected>', html)


def test_jobs_list_offers_only_orderings_the_list_accepts(people, fake_backend):
    from jobs.page_helpers import ORDERING_CHOICES
    from jobs.selectors import ORDERINGS

    html = client_for(people["owner"]).get("/jobs/").content.decode()
    assert 'name="ordering"' in html
    offered = re.findall(r'<option value="(-?[a-z_]+)"(?: selected)?>', html.split('id="f-ordering"')[1])
    assert offered == [value for value, _ in ORDERING_CHOICES] and set(offered) <= ORDERINGS
    assert '<option value="-created_at" selected>' in html


@pytest.mark.parametrize("query", ["state=running,failed", "state=running&state=failed", "state=failed,,running,"])
def test_jobs_list_takes_several_states_and_ticks_their_boxes(query, api, people, team, fake_backend):
    owner = people["owner"]
    for state in (JobState.RUNNING, JobState.FAILED, JobState.SUCCESS):
        (made,) = _bulk_jobs(1, owner=owner, team=team, cluster=fake_backend.cluster, state=state)
        Job.objects.filter(pk=made.pk).update(name=f"{state}-one")
    client = client_for(owner)
    html = client.get(f"/jobs/?{query}").content.decode()
    assert sorted(_names_shown(html)) == ["failed-one", "running-one"]
    for state in JobState.values:
        box = re.search(rf'<input[^>]*name="state" value="{state}"[^>]*>', html)
        assert box, state
        assert ("checked" in box.group(0)) is (state in ("running", "failed"))
    assert ">running, failed</button>" in html or ">failed, running</button>" in html
    # The page's filters and the API agree.
    api_names = {j["name"] for j in api(owner).get("/api/v1/jobs/?state=running,failed").json()["results"]}
    assert api_names == {"failed-one", "running-one"}


def test_jobs_list_with_no_state_ticked_shows_every_state(people, team, fake_backend):
    _bulk_jobs(1, owner=people["owner"], team=team, cluster=fake_backend.cluster, state=JobState.FAILED)
    _bulk_jobs(1, owner=people["owner"], team=team, cluster=fake_backend.cluster, state=JobState.RUNNING)
    html = client_for(people["owner"]).get("/jobs/?state=").content.decode()
    assert html.count("data-job-id=") == 2
    assert ">any</button>" in html and " checked" not in html


def test_jobs_list_state_badges_carry_their_state_for_the_script(people, job):
    html = client_for(people["owner"]).get("/jobs/").content.decode()
    assert f'data-job-id="{job.public_id}"' in html
    assert 'class="badge badge-state state-pending" data-job-state="pending"' in html
    assert "easyai/jobs.js" in html


def test_job_states_answers_only_for_visible_jobs(people, job):
    url = f"/jobs/states/?id={job.public_id}&id=j-zzzzzzzz"
    assert client_for(people["mate"]).get(url).json() == {
        "jobs": {job.public_id: {"state": "pending", "label": "pending"}}
    }
    assert client_for(people["outsider"]).get(url).json() == {"jobs": {}}


# --- experiments ------------------------------------------------------------------------------


def test_create_an_experiment_in_the_current_team(people, team):
    response = client_for(people["mate"]).post("/experiments/", {"name": "ablation", "description": "what matters"})
    experiment = Experiment.objects.get(name="ablation")
    assert (experiment.team, experiment.owner, experiment.description) == (team, people["mate"], "what matters")
    assert response.url == f"/experiments/{experiment.pk}/"


def test_duplicate_experiment_name_shows_the_error_at_the_field(people, team):
    Experiment.objects.create(team=team, name="ablation", owner=people["owner"])
    response = client_for(people["mate"]).post("/experiments/", {"name": "ablation"})
    assert response.status_code == 400
    assert 'id="id_name_error"' in response.content.decode()
    assert Experiment.objects.filter(name="ablation").count() == 1


def test_experiment_page_lists_its_jobs_only(people, job, team, fake_backend):
    (other,) = _bulk_jobs(1, owner=people["owner"], team=team, cluster=fake_backend.cluster)
    html = client_for(people["mate"]).get(f"/experiments/{job.experiment_id}/").content.decode()
    assert job.public_id in html and other.public_id not in html


def test_experiments_list_shows_the_teams_experiments_to_its_members_only(people, job):
    link = f'href="/experiments/{job.experiment_id}/">baseline</a>'
    assert link in client_for(people["mate"]).get("/experiments/").content.decode()
    assert link not in client_for(people["outsider"]).get("/experiments/?team=all").content.decode()


# --- the submit page -------------------------------------------------------------------------

FORM = {
    "name": "resnet",
    "framework": "pytorch",
    "image": "pytorch/pytorch:2.3",
    "command": "python train.py",
    "workers": "2",
    "cpu": "2",
    "memory": "4Gi",
    "gpu": "1",
    "priority": "high",
    "experiment": "baseline",
    "cluster": "",
}


def test_form_to_yaml_and_back_round_trips(people, fake_backend):
    client = client_for(people["owner"])
    response = client.post("/jobs/new/form-to-yaml/", FORM)
    assert response.status_code == 200
    text = response.json()["yaml"]
    spec = job_spec.validate(job_spec.parse(text, "application/yaml"))
    assert spec["roles"]["worker"]["replicas"] == 2 and spec["roles"]["master"]["gpu"] == 1
    back = client.post("/jobs/new/yaml-to-form/", {"yaml": text})
    assert back.status_code == 200 and back.json()["simple"] is True
    fields = back.json()["fields"]
    assert {name: fields[name] for name in FORM} == FORM


def test_form_to_yaml_takes_json_too(people):
    response = client_for(people["owner"]).post("/jobs/new/form-to-yaml/", FORM, content_type="application/json")
    assert "name: resnet" in response.json()["yaml"]


def test_yaml_to_form_names_every_problem(people):
    client = client_for(people["owner"])
    bad = client.post("/jobs/new/yaml-to-form/", {"yaml": "name: Bad Name\nframework: pytorch\nroles: {}\n"})
    assert bad.status_code == 400
    errors = bad.json()["errors"]
    assert {"name", "roles", "command"} <= set(errors)
    broken = client.post("/jobs/new/yaml-to-form/", {"yaml": "name: [unclosed"})
    assert broken.status_code == 400 and "spec" in broken.json()["errors"]


def test_yaml_to_form_says_when_the_form_cannot_show_the_spec(people):
    text = (
        "name: two\nframework: batch\nimage: img\nroles:\n  prepare:\n    command: 'true'\n"
        "  train:\n    command: 'true'\n"
    )
    answer = client_for(people["owner"]).post("/jobs/new/yaml-to-form/", {"yaml": text})
    assert answer.status_code == 200 and answer.json()["simple"] is False and answer.json()["message"]


def test_submit_page_starts_with_a_form_and_its_yaml(people, fake_backend):
    html = client_for(people["owner"]).get("/jobs/new/").content.decode()
    assert 'name="yaml"' in html and "framework: pytorch" in html
    assert 'value="fake"' in html  # the enabled cluster is offered
    assert "easyai/job_submit.js" in html


def test_submit_page_prefills_a_copy_of_a_job(people, fake_backend, submit):
    same = {"replicas": 1, "cpu": "1", "memory": "1Gi"}
    job = submit(people["owner"], experiment="baseline", roles={"master": same, "worker": {**same, "replicas": 2}})
    html = client_for(people["mate"]).get(f"/jobs/new/?from={job.public_id}").content.decode()
    assert "name: resnet" in html and "experiment: baseline" in html
    assert 'value="resnet"' in html and 'name="workers" value="2"' in html  # the form side too
    assert '<fieldset id="simple-form">' in html


def test_a_copy_the_form_cannot_show_leaves_the_form_read_only(people, job):
    # The fixture's master and workers have different resources: only the YAML can say that.
    html = client_for(people["mate"]).get(f"/jobs/new/?from={job.public_id}").content.decode()
    assert "name: resnet" in html
    assert '<fieldset id="simple-form" disabled>' in html and "roles with different resources" in html


def test_submit_a_good_yaml_spec_creates_the_job_and_redirects_to_it(people, fake_backend):
    text = "name: good\nframework: pytorch\nimage: img\ncommand: python train.py\nroles:\n  master: {}\n"
    response = client_for(people["owner"]).post(
        "/jobs/new/", {"yaml": text, "source": "yaml", "action": "submit", **dict.fromkeys(FORM, "")}
    )
    job = Job.objects.get(name="good")
    assert response.status_code == 302 and response.url == f"/jobs/{job.public_id}/"
    assert (job.owner, job.team.slug, job.state) == (people["owner"], "vision", JobState.QUEUED)
    assert Job.objects.count() == 1


def test_submit_from_the_form(people, fake_backend):
    response = client_for(people["owner"]).post("/jobs/new/", {**FORM, "yaml": "", "source": "form"})
    job = Job.objects.get(name="resnet")
    assert response.url == f"/jobs/{job.public_id}/"
    assert (job.gpu, job.priority, job.experiment.name) == (3, "high", "baseline")


def test_submit_a_bad_spec_shows_errors_at_their_fields_and_creates_nothing(people, fake_backend):
    bad = {**FORM, "name": "Bad Name", "workers": "many", "memory": "lots", "source": "form", "action": "submit"}
    response = client_for(people["owner"]).post("/jobs/new/", bad)
    assert response.status_code == 400
    html = response.content.decode()
    for field in ("name", "workers", "memory"):
        assert f'id="id_{field}_error"' in html
    assert 'id="spec-errors"' in html
    for path in ("name", "roles.worker.replicas", "roles.worker.memory"):
        assert f"<code>{path}</code>" in html
    assert 'value="Bad Name"' in html  # what was typed stays
    assert Job.objects.count() == 0


def test_submit_a_spec_the_services_refuse_shows_why_and_creates_nothing(people, fake_backend):
    data = {**FORM, "cluster": "nowhere", "source": "form", "action": "submit"}
    response = client_for(people["owner"]).post("/jobs/new/", data)
    assert response.status_code == 400
    assert 'id="id_cluster_error"' in response.content.decode()
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name: [unclosed",
        "- a list\n- not a mapping\n",
        "just text",
        "name: x\nname: y\n",
        "roles: 5\nframework: 12\n",
        "a: &a [*a]\n",
        "\x00",
        "name: ok\nframework: pytorch\ncommand: x\nroles:\n  master:\n    replicas: 99999999999999999999\n",
    ],
)
def test_bad_yaml_never_fails_the_page(text, people, fake_backend):
    client = client_for(people["owner"])
    for action in ("submit", "validate"):
        response = client.post("/jobs/new/", {"yaml": text, "source": "yaml", "action": action})
        assert response.status_code == 400
        assert 'id="spec-errors"' in response.content.decode()
    assert client.post("/jobs/new/yaml-to-form/", {"yaml": text}).status_code == 400
    assert Job.objects.count() == 0


def test_validate_shows_the_dry_run_and_records_nothing(people, fake_backend):
    response = client_for(people["owner"]).post("/jobs/new/", {**FORM, "source": "form", "action": "validate"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="dry-run"' in html and "FakeJob" in html and "master-0" in html
    assert Job.objects.count() == 0 and not Experiment.objects.exists()


@pytest.mark.parametrize("url", ["/jobs/new/form-to-yaml/", "/jobs/new/yaml-to-form/", "/jobs/new/"])
def test_submit_endpoints_need_the_csrf_token(url, people, fake_backend):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["owner"])
    assert client.post(url, {**FORM, "yaml": "name: a"}).status_code == 403
    assert Job.objects.count() == 0
