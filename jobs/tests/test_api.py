"""The jobs API: submit, dry run, list, detail, stop, rerun, delete, spec — through the permission module."""

import json

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.models import Cluster, Quota
from jobs.models import Experiment, Job, JobEvent, Task, Volume
from jobs.state import JobState
from jobs.tests.spec_cases import BAD_SPECS

pytestmark = pytest.mark.django_db


def post_spec(client, doc, *, dry_run=False, capture=None):
    url = "/api/v1/jobs/" + ("?dry_run=true" if dry_run else "")
    return client.post(url, json.dumps(doc), content_type="application/json")


def test_submit_json_records_the_job_and_hands_it_to_the_backend(
    api, owner, fake_backend, spec_doc, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_spec(api(owner), spec_doc(experiment="baseline"))
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get(public_id=body["id"])
    assert response["Location"] == f"/api/v1/jobs/{job.public_id}/"
    assert body["team"] == "vision" and body["owner"] == "owner" and body["cluster"] == "fake"
    assert job.experiment.name == "baseline"
    assert sorted(t.name for t in job.tasks.all()) == ["master-0", "worker-0", "worker-1"]
    assert job.cpu_milli == 2000 and job.memory_bytes == 3 * 2**30
    assert fake_backend.submits() == 1
    assert job.state == JobState.PENDING
    assert [(e.from_state, e.to_state) for e in job.events.all()] == [("queued", "pending")]
    description = fake_backend.jobs[job.public_id]
    worker = next(t for t in description.tasks if t.name == "worker-1")
    assert worker.env["model_dir"].endswith(f"{job.public_id}/model_dir")
    assert worker.env["summary_dir"].endswith(f"{job.public_id}/worker-1/summary_dir")


def test_submit_yaml_is_the_same_document(api, owner, fake_backend, spec_doc):
    response = api(owner).post("/api/v1/jobs/", yaml.safe_dump(spec_doc()), content_type="application/yaml")
    assert response.status_code == 201, response.content
    assert Job.objects.get(public_id=response.json()["id"]).spec["roles"]["worker"]["replicas"] == 2


def test_dry_run_validates_and_records_nothing(api, owner, fake_backend, spec_doc):
    response = post_spec(api(owner), spec_doc(experiment="new-one"), dry_run=True)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["spec"]["team"] == "vision"
    assert [t["name"] for t in body["description"]["tasks"]] == ["master-0", "worker-0", "worker-1"]
    assert body["manifests"][0]["kind"] == "FakeJob"
    assert not Job.objects.exists() and not Experiment.objects.exists() and fake_backend.submits() == 0


@pytest.mark.parametrize(("doc", "path"), BAD_SPECS, ids=[p for _, p in BAD_SPECS])
def test_bad_spec_is_answered_400_naming_its_field_and_creates_nothing(api, owner, fake_backend, doc, path):
    if json.loads(json.dumps(doc)) == doc:
        response = post_spec(api(owner), doc)
    else:  # JSON cannot say it (a number as a key): YAML can
        response = api(owner).post("/api/v1/jobs/", yaml.safe_dump(doc), content_type="application/yaml")
    assert response.status_code == 400, response.content
    assert path in response.json(), response.json()
    assert not Job.objects.exists() and not Experiment.objects.exists() and not Task.objects.exists()


def test_spec_that_is_not_yaml_names_the_spec(api, owner, fake_backend):
    response = api(owner).post("/api/v1/jobs/", "name: [unclosed", content_type="application/yaml")
    assert response.status_code == 400
    assert "spec" in response.json()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"team": "speech"}, "team"),  # a team the user is not in
        ({"team": "nope"}, "team"),
        ({"cluster": "nowhere"}, "cluster"),
        ({"pre_job": "j-00000000"}, "pre_job"),
        ({"volumes": ["datasets"]}, "volumes.0"),
    ],
)
def test_names_that_do_not_resolve_are_refused(api, owner, other_team, fake_backend, spec_doc, changes, field):
    response = post_spec(api(owner), spec_doc(**changes))
    assert response.status_code == 400
    assert field in response.json()
    assert not Job.objects.exists()


def test_disabled_cluster_and_backend_problems_are_refused(api, owner, fake_backend, spec_doc):
    Cluster.objects.create(name="off", kind="local", enabled=False)
    response = post_spec(api(owner), spec_doc(cluster="off"))
    assert response.status_code == 400 and "cluster" in response.json()
    fake_backend.problems = ["MPI jobs need mpirun on this host"]
    response = post_spec(api(owner), spec_doc())
    assert response.status_code == 400
    assert response.json()["cluster"] == ["MPI jobs need mpirun on this host"]
    assert not Job.objects.exists()


def test_a_volume_of_another_team_is_not_offered(api, owner, team, other_team, fake_backend, spec_doc):
    volume = Volume.objects.create(name="datasets", mount_path="/datasets", host_path="/srv/data")
    volume.teams.add(other_team)
    assert "volumes.0" in post_spec(api(owner), spec_doc(volumes=["datasets"])).json()
    volume.teams.add(team)
    assert post_spec(api(owner), spec_doc(volumes=["datasets"])).status_code == 201


def test_a_job_that_can_never_fit_the_quota_is_refused_with_the_numbers(api, owner, team, fake_backend, spec_doc):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=1000, memory_bytes=8 * 2**30, gpu=0)
    response = post_spec(api(owner), spec_doc())
    assert response.status_code == 400
    assert response.json()["roles"] == ["needs 2 CPU, the team's quota on fake is 1 CPU"]
    assert not Job.objects.exists()


def test_a_job_within_quota_but_not_free_quota_waits_queued(owner, team, fake_backend, submit):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=2000, memory_bytes=8 * 2**30, gpu=0)
    first = submit(owner)
    second = submit(owner, name="second")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == JobState.PENDING
    assert second.state == JobState.QUEUED
    assert second.reason == "waiting" and "team quota: needs 2 CPU, 0 of 2 CPU free" in second.message
    assert fake_backend.submits() == 1


# --- permissions ---------------------------------------------------------------------


@pytest.fixture
def job(owner, fake_backend, submit):
    return submit(owner)


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("mate", 200), ("team_admin", 200), ("staff", 200), ("outsider", 404)]
)
def test_detail_and_spec_visibility(api, people, job, who, status):
    client = api(people[who])
    assert client.get(f"/api/v1/jobs/{job.public_id}/").status_code == status
    response = client.get(f"/api/v1/jobs/{job.public_id}/spec/")
    assert response.status_code == status
    if status == 200:
        assert yaml.safe_load(response.content)["name"] == "resnet"


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("team_admin", 200), ("staff", 200), ("mate", 403), ("outsider", 404)]
)
def test_stop_permissions(api, people, job, fake_backend, who, status, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(people[who]).post(f"/api/v1/jobs/{job.public_id}/stop/")
    assert response.status_code == status
    job.refresh_from_db()
    if status == 200:
        assert job.state == JobState.STOPPED
        assert job.events.last().actor == people[who]
        assert ("stop", job.public_id) in fake_backend.calls
    else:
        assert job.state == JobState.PENDING
        assert ("stop", job.public_id) not in fake_backend.calls


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 204), ("team_admin", 204), ("staff", 204), ("mate", 403), ("outsider", 404)]
)
def test_delete_permissions(api, people, job, who, status):
    response = api(people[who]).delete(f"/api/v1/jobs/{job.public_id}/")
    assert response.status_code == status
    job.refresh_from_db()
    assert job.deleted is (status == 204)
    assert job.state == (JobState.STOPPED if status == 204 else JobState.PENDING)


def test_deleting_a_job_that_ended_meanwhile_just_hides_it(owner, job):
    from jobs import services

    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCESS)  # it ended after the caller read it
    deleted = services.job_delete(job=job, actor=owner)
    assert deleted.deleted and deleted.state == JobState.SUCCESS


def test_deleted_job_stays_recorded_but_is_gone_from_the_api(api, owner, job):
    assert api(owner).delete(f"/api/v1/jobs/{job.public_id}/").status_code == 204
    assert api(owner).get(f"/api/v1/jobs/{job.public_id}/").status_code == 404
    assert api(owner).get("/api/v1/jobs/").json()["count"] == 0
    assert Job.objects.filter(pk=job.pk, deleted=True).exists()


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 201), ("mate", 201), ("team_admin", 201), ("staff", 201), ("outsider", 404)]
)
def test_rerun_makes_a_new_job_from_the_same_spec(api, people, job, who, status):
    response = api(people[who]).post(f"/api/v1/jobs/{job.public_id}/rerun/")
    assert response.status_code == status
    if status == 201:
        rerun = Job.objects.get(public_id=response.json()["id"])
        assert rerun.pk != job.pk and rerun.rerun_of == job and rerun.spec == job.spec
        assert rerun.owner == people[who]
    else:
        assert Job.objects.count() == 1


def test_a_viewer_outside_the_team_is_refused_a_rerun_like_on_the_page(api, job, make_user):
    """A view grant shows the job but gives no seat in its team: 403 with the reason, nothing created."""
    from guardian.shortcuts import assign_perm

    guest = make_user("guest")
    assign_perm("jobs.view_job", guest, job)
    client = api(guest)
    assert client.get(f"/api/v1/jobs/{job.public_id}/").status_code == 200
    response = client.post(f"/api/v1/jobs/{job.public_id}/rerun/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only members of the job's team may re-run it."}
    assert Job.objects.count() == 1


def test_anonymous_gets_401_everywhere(api, owner, team, job, spec_doc):
    experiment = Experiment.objects.create(team=team, name="baseline", owner=owner)
    client = api(None)
    assert client.get("/api/v1/jobs/").status_code == 401
    assert client.post("/api/v1/jobs/", {}, format="json").status_code == 401
    assert post_spec(client, spec_doc(), dry_run=True).status_code == 401
    assert client.get(f"/api/v1/jobs/{job.public_id}/").status_code == 401
    assert client.get(f"/api/v1/jobs/{job.public_id}/spec/").status_code == 401
    assert client.post(f"/api/v1/jobs/{job.public_id}/stop/").status_code == 401
    assert client.post(f"/api/v1/jobs/{job.public_id}/rerun/").status_code == 401
    assert client.delete(f"/api/v1/jobs/{job.public_id}/").status_code == 401
    assert client.get("/api/v1/experiments/").status_code == 401
    assert client.post("/api/v1/experiments/", {"name": "ablation"}, format="json").status_code == 401
    assert client.get(f"/api/v1/experiments/{experiment.pk}/").status_code == 401
    assert Job.objects.count() == 1 and Experiment.objects.count() == 1
    job.refresh_from_db()
    assert job.state == JobState.PENDING and not job.deleted


def test_stopping_a_finished_job_is_refused_and_changes_nothing(api, owner, job):
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCESS)
    response = api(owner).post(f"/api/v1/jobs/{job.public_id}/stop/")
    assert response.status_code == 409
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS and job.events.count() == 1


# --- lists -------------------------------------------------------------------------------


def test_list_filters_and_visibility(api, owner, mate, outsider, other_team, fake_backend, submit):
    a = submit(owner, name="alpha", experiment="e1")
    submit(mate, name="beta", framework="batch", roles={"train": {"replicas": 1}})
    submit(outsider, name="gamma", team="speech")
    client = api(owner)
    names = lambda params="": [j["name"] for j in client.get("/api/v1/jobs/" + params).json()["results"]]  # noqa: E731
    assert sorted(names()) == ["alpha", "beta"]
    assert names("?owner=mate") == ["beta"]
    assert names("?framework=pytorch") == ["alpha"]
    assert names("?experiment=e1") == ["alpha"]
    assert names("?q=alp") == ["alpha"]
    assert names(f"?q={a.public_id}") == ["alpha"]
    assert names("?state=pending,running") == ["beta", "alpha"]
    assert names("?ordering=name") == ["alpha", "beta"]
    assert names("?cluster=fake&team=vision") == ["beta", "alpha"]
    assert client.get("/api/v1/jobs/?ordering=owner__password").status_code == 400
    assert sorted(j["name"] for j in api(outsider).get("/api/v1/jobs/").json()["results"]) == ["gamma"]


def _bulk_jobs(n, owner, team, cluster):
    Job.objects.bulk_create(
        [
            Job(
                public_id=f"j-{i:08d}",
                name=f"job-{i}",
                team=team,
                owner=owner,
                cluster=cluster,
                framework="batch",
                spec={},
            )
            for i in range(n)
        ]
    )


def test_list_runs_the_same_queries_for_5_jobs_as_for_500(api, owner, team, fake_backend):
    client = api(owner)
    # Once-per-process and once-a-minute reads and writes (content types, the token's last use): not counted.
    client.get("/api/v1/jobs/")
    _bulk_jobs(5, owner, team, fake_backend.cluster)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/jobs/").json()["count"] == 5
    Job.objects.all().delete()
    _bulk_jobs(500, owner, team, fake_backend.cluster)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/api/v1/jobs/").json()["count"] == 500
    assert len(few) == len(many)


def test_detail_carries_tasks_and_events(api, owner, job):
    body = api(owner).get(f"/api/v1/jobs/{job.public_id}/").json()
    assert [t["name"] for t in body["tasks"]] == ["master-0", "worker-0", "worker-1"]
    assert body["events"][0]["to_state"] == "pending"
    assert body["can_change"] is True
    assert body["spec"]["framework"] == "pytorch"


def test_experiments_api(api, owner, mate, outsider):
    client = api(owner)
    response = client.post("/api/v1/experiments/", {"name": "baseline", "description": "first"}, format="json")
    assert response.status_code == 201 and response.json()["team"] == "vision"
    assert client.post("/api/v1/experiments/", {"name": "baseline"}, format="json").status_code == 400
    assert client.post("/api/v1/experiments/", {"name": ""}, format="json").json().keys() == {"name"}
    assert client.post("/api/v1/experiments/", {"name": "x", "team": "speech"}, format="json").json().keys() == {"team"}
    assert Experiment.objects.count() == 1
    assert [e["name"] for e in api(mate).get("/api/v1/experiments/").json()["results"]] == ["baseline"]
    assert api(outsider).get("/api/v1/experiments/").json()["results"] == []
    eid = response.json()["id"]
    assert api(outsider).get(f"/api/v1/experiments/{eid}/").status_code == 404


@pytest.mark.parametrize(
    ("who", "create", "list_", "detail"),
    [
        # creating in the Vision team; the experiments listed; the detail of Vision's experiment
        ("owner", 201, {"baseline"}, 200),
        ("mate", 201, {"baseline"}, 200),
        ("team_admin", 201, {"baseline"}, 200),
        ("staff", 201, {"baseline", "speech-exp"}, 200),  # platform admins see every team
        ("outsider", 400, {"speech-exp"}, 404),
    ],
)
def test_experiments_api_permissions(api, people, team, other_team, who, create, list_, detail):
    baseline = Experiment.objects.create(team=team, name="baseline", owner=people["owner"])
    Experiment.objects.create(team=other_team, name="speech-exp", owner=people["outsider"])
    client = api(people[who])
    response = client.post("/api/v1/experiments/", {"name": "ablation", "team": "vision"}, format="json")
    assert response.status_code == create, response.content
    created = Experiment.objects.filter(name="ablation").first()
    if create == 201:
        assert (created.team, created.owner) == (team, people[who])
        assert response.json()["team"] == "vision"
    else:
        assert response.json().keys() == {"team"} and created is None
    listed = {e["name"] for e in client.get("/api/v1/experiments/").json()["results"]} - {"ablation"}
    assert listed == list_
    assert client.get(f"/api/v1/experiments/{baseline.pk}/").status_code == detail


def test_staff_in_no_team_must_name_the_team_of_an_experiment(api, staff):
    response = api(staff).post("/api/v1/experiments/", {"name": "ablation"}, format="json")
    assert response.status_code == 400 and response.json().keys() == {"team"}
    assert not Experiment.objects.exists()


def test_an_experiment_event_list_keeps_actor(api, team_admin, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api(team_admin).post(f"/api/v1/jobs/{job.public_id}/stop/")
    event = JobEvent.objects.filter(job=job).last()
    assert (event.to_state, event.actor.username) == ("stopped", "teamadmin")


def test_a_job_shared_with_an_outsider_by_an_object_grant(
    api, owner, outsider, job, django_capture_on_commit_callbacks
):
    """guardian grants share one object outside the team: view to see it, change to stop it; groups count too."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm, remove_perm

    client = api(outsider)
    assert client.get(f"/api/v1/jobs/{job.public_id}/").status_code == 404
    assign_perm("jobs.view_job", outsider, job)
    assert client.get(f"/api/v1/jobs/{job.public_id}/").status_code == 200
    assert [j["id"] for j in client.get("/api/v1/jobs/").json()["results"]] == [job.public_id]
    assert client.post(f"/api/v1/jobs/{job.public_id}/stop/").status_code == 403
    remove_perm("jobs.view_job", outsider, job)
    reviewers = Group.objects.create(name="reviewers")
    reviewers.user_set.add(outsider)
    assign_perm("jobs.view_job", reviewers, job)
    assign_perm("jobs.change_job", reviewers, job)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/jobs/{job.public_id}/stop/").status_code == 200
    job.refresh_from_db()
    assert job.state == JobState.STOPPED


def test_a_global_permission_never_stands_in_for_an_object_grant(api, outsider, job):
    from django.contrib.auth.models import Permission

    outsider.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert api(outsider).get(f"/api/v1/jobs/{job.public_id}/").status_code == 404
    assert api(outsider).get("/api/v1/jobs/").json()["results"] == []
