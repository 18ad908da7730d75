"""The pipelines API: save and validate specs, runs and their controls, schedules; who may do what (the owner, a
team-mate, the team admin, an outsider); bad input answered 400 by field with nothing recorded; never a 500."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines import services
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, RunState, RunStep, Schedule, StepJob
from testing.pipelines import CHAIN, jobs_of, save, states

CYCLE = """
name: loop
steps:
  - {name: a, depends: [b], job: {framework: batch, command: "true", roles: {main: {}}}}
  - {name: b, depends: [a], job: {framework: batch, command: "true", roles: {main: {}}}}
"""

FANOUT = """
name: fan
params:
  shards: {type: int, default: 3}
steps:
  - name: shard
    foreach: [1, 2, 3]
    job: {framework: batch, command: "echo {{item}}", roles: {main: {}}}
"""


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (Pipeline, PipelineVersion, PipelineRun, RunStep, StepJob, Schedule)
    )


@pytest.fixture
def chain(owner, fake_backend) -> Pipeline:
    return save(owner, CHAIN).pipeline


def post(client, url: str, body=None):
    return client.post(url, body if body is not None else {}, format="json")


# --- saving and checking specs ------------------------------------------------------------------------------


def test_saving_a_spec_makes_the_pipeline_then_numbers_its_versions(api, owner, fake_backend):
    first = post(api(owner), "/api/v1/pipelines/", {"spec": CHAIN})
    assert first.status_code == 201, first.json()
    body = first.json()
    assert (body["team"], body["name"], body["owner"], body["version"], body["latest"]) == (
        "vision", "chain", "owner", 1, 1,
    )  # fmt: skip
    assert PipelineVersion.objects.get().source == CHAIN
    # A mapping is a spec too; the same name in the same team is the next version.
    mapping = services.pipeline_check(user=owner, data=CHAIN) | {"description": "second"}
    second = post(api(owner), "/api/v1/pipelines/", {"spec": mapping})
    assert second.status_code == 201, second.json()
    assert (second.json()["id"], second.json()["version"]) == (body["id"], 2)
    detail = api(owner).get(f"/api/v1/pipelines/{body['id']}/").json()
    assert [v["number"] for v in detail["versions"]] == [2, 1]
    assert detail["versions"][0]["created_by"] == "owner" and detail["description"] == "second"
    version = api(owner).get(f"/api/v1/pipelines/{body['id']}/versions/1/").json()
    assert version["source"] == CHAIN and version["spec"]["steps"][1]["requires"] == ["pretrain"]
    assert api(owner).get(f"/api/v1/pipelines/{body['id']}/versions/3/").status_code == 404


def test_the_body_team_names_the_team_of_a_spec_that_names_none(api, owner, outsider, other_team, fake_backend):
    from teams.models import Membership

    Membership.objects.create(team=other_team, user=owner, role=Membership.Role.MEMBER)
    response = post(api(owner), "/api/v1/pipelines/", {"spec": CHAIN, "team": "speech"})
    assert response.status_code == 201, response.json()
    assert response.json()["team"] == "speech"
    # A team the caller is not in: 400 naming the team, nothing saved.
    before = counts()
    response = post(api(outsider), "/api/v1/pipelines/", {"spec": CHAIN, "team": "vision"})
    assert response.status_code == 400 and "team" in response.json()
    assert counts() == before


def test_a_bad_spec_is_refused_by_its_paths_and_nothing_is_recorded(api, owner, fake_backend):
    cycle = post(api(owner), "/api/v1/pipelines/", {"spec": CYCLE})
    assert cycle.status_code == 400
    assert "cycle" in " ".join(cycle.json()["steps.0.depends"])
    unknown = CHAIN.replace("parameters.loss}}", "parameters.nope}}")
    response = post(api(owner), "/api/v1/pipelines/", {"spec": unknown})
    assert response.status_code == 400 and any(path.startswith("steps.1.job") for path in response.json())
    for body in ({}, {"spec": ""}, {"spec": 7}, {"spec": ["a"]}, {"spec": "a: [unclosed"}, {"spec": {"name": 1}}):
        response = post(api(owner), "/api/v1/pipelines/", body)
        assert response.status_code == 400, (body, response.content)
    assert counts() == (0, 0, 0, 0, 0, 0)


def test_validate_answers_the_normalized_spec_and_its_graph_or_every_problem(api, owner, outsider):
    response = post(api(outsider), "/api/v1/pipelines/validate/", {"spec": CHAIN})
    assert response.status_code == 200
    body = response.json()
    assert body["spec"]["name"] == "chain"
    assert body["steps"] == [
        {"name": "pretrain", "requires": [], "depends": "", "when": "", "foreach": None},
        {"name": "finetune", "requires": ["pretrain"], "depends": "pretrain", "when": "", "foreach": None},
    ]
    fan = post(api(owner), "/api/v1/pipelines/validate/", {"spec": FANOUT}).json()
    assert fan["steps"][0]["foreach"] == [1, 2, 3]
    bad = CHAIN.replace("depends: [pretrain]", "depends: [nothing]").replace("lr: 0.1", "lr: {type: complex}")
    response = post(api(owner), "/api/v1/pipelines/validate/", {"spec": bad})
    assert response.status_code == 400
    assert {"steps.1.depends", "params.lr.type"} <= set(response.json())
    assert counts() == (0, 0, 0, 0, 0, 0)


# --- who sees and who changes -------------------------------------------------------------------------------


def test_outsiders_get_404_everywhere_and_team_mates_see(api, people, chain, drive):
    run = services.run_submit(user=people["owner"], pipeline=chain)
    schedule = services.schedule_save(
        user=people["owner"], pipeline=chain, data={"name": "nightly", "cron": "0 3 * * *"}
    )
    reads = [
        f"/api/v1/pipelines/{chain.pk}/",
        f"/api/v1/pipelines/{chain.pk}/versions/1/",
        f"/api/v1/pipelines/{chain.pk}/runs/",
        f"/api/v1/pipelines/{chain.pk}/schedules/",
        f"/api/v1/pipeline-runs/{run.public_id}/",
        f"/api/v1/pipeline-schedules/{schedule.pk}/",
    ]
    for role in ("owner", "mate", "team_admin", "staff"):
        for url in reads:
            assert api(people[role]).get(url).status_code == 200, (role, url)
    outsider = api(people["outsider"])
    for url in reads:
        assert outsider.get(url).status_code == 404, url
    before = counts()
    writes = [
        (f"/api/v1/pipelines/{chain.pk}/runs/", {}),
        (f"/api/v1/pipelines/{chain.pk}/schedules/", {"name": "x", "cron": "* * * * *"}),
        (f"/api/v1/pipeline-runs/{run.public_id}/stop/", None),
        (f"/api/v1/pipeline-runs/{run.public_id}/retry/", {"step": "pretrain"}),
        (f"/api/v1/pipeline-runs/{run.public_id}/rerun-from/", {"step": "pretrain"}),
        (f"/api/v1/pipeline-schedules/{schedule.pk}/backfill/", {"start": "2026-01-01T00:00Z", "end": "2026-01-02Z"}),
    ]
    for url, body in writes:
        assert post(outsider, url, body).status_code == 404, url
    assert (
        outsider.patch(f"/api/v1/pipeline-schedules/{schedule.pk}/", {"paused": True}, format="json").status_code == 404
    )
    assert outsider.delete(f"/api/v1/pipeline-schedules/{schedule.pk}/").status_code == 404
    assert counts() == before
    assert not PipelineRun.objects.get(pk=run.pk).stop_requested
    # The list: what each may see.
    assert [p["name"] for p in api(people["mate"]).get("/api/v1/pipelines/").json()] == ["chain"]
    assert outsider.get("/api/v1/pipelines/").json() == []
    assert api(people["mate"]).get("/api/v1/pipelines/?team=speech").json() == []
    assert api(None).get("/api/v1/pipelines/").status_code in (401, 403)


def test_a_new_version_of_someone_elses_pipeline_is_the_owners_or_a_team_admins(api, people, chain):
    before = counts()
    response = post(api(people["mate"]), "/api/v1/pipelines/", {"spec": CHAIN})
    assert response.status_code == 403
    assert counts() == before
    response = post(api(people["team_admin"]), "/api/v1/pipelines/", {"spec": CHAIN})
    assert response.status_code == 201 and response.json()["version"] == 2
    assert post(api(people["owner"]), "/api/v1/pipelines/", {"spec": CHAIN}).json()["version"] == 3


# --- runs ---------------------------------------------------------------------------------------------------


def test_team_mates_start_runs_with_params_and_see_their_steps(api, people, chain, drive):
    response = post(api(people["mate"]), f"/api/v1/pipelines/{chain.pk}/runs/", {"params": {"lr": "0.5"}})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("r-") and body["state"] == "queued" and body["owner"] == "mate"
    assert (body["params"], body["version"], body["engine"], body["pipeline"]) == ({"lr": 0.5}, 1, "portal", chain.pk)
    assert [(s["name"], s["state"], s["requires"], s["jobs"]) for s in body["steps"]] == [
        ("pretrain", "waiting", [], []),
        ("finetune", "waiting", ["pretrain"], []),
    ]
    run = PipelineRun.objects.get(public_id=body["id"])
    drive.tick()
    [pretrain] = jobs_of(run, "pretrain")
    drive.end(pretrain, files={"model_dir/loss.txt": "0.25"})
    drive.tick()
    detail = api(people["owner"]).get(f"/api/v1/pipeline-runs/{run.public_id}/").json()
    assert detail["state"] == "running" and detail["started_at"]
    first, second = detail["steps"]
    assert first["state"] == "success" and first["outputs"]["parameters"]["loss"] == "0.25"
    assert first["jobs"] == [
        {
            "item": 0,
            "attempt": 1,
            "job": pretrain.public_id,
            "job_state": "success",
            "outcome": "success",
            "retry_at": None,
        }
    ]
    assert second["state"] == "running" and second["jobs"][0]["job_state"] in ("queued", "pending", "running")


def test_bad_run_input_is_400_by_field_and_records_nothing(api, owner, chain):
    before = counts()
    url = f"/api/v1/pipelines/{chain.pk}/runs/"
    cases = [
        ({"params": {"lr": "fast"}}, "params.lr"),
        ({"params": {"nope": 1}}, "params.nope"),
        ({"params": ["lr"]}, "params"),
        ({"version": 9}, "version"),
        ({"version": "x"}, "version"),
    ]
    for body, field in cases:
        response = post(api(owner), url, body)
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    assert counts() == before


def test_runs_are_listed_newest_first_in_pages_with_a_fixed_number_of_queries(api, owner, chain, drive, settings):
    for _ in range(3):
        services.run_submit(user=owner, pipeline=chain)
    url = f"/api/v1/pipelines/{chain.pk}/runs/"
    client = api(owner)
    client.get(url)  # the token and roles read once
    with CaptureQueriesContext(connection) as few:
        body = client.get(url).json()
    assert body["count"] == 3 and [r["id"] for r in body["results"]] == list(
        PipelineRun.objects.order_by("-created_at", "-id").values_list("public_id", flat=True)
    )
    for _ in range(7):
        services.run_submit(user=owner, pipeline=chain)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).json()["count"] == 10
    assert len(many) == len(few)
    assert client.get(url + "?state=queued").json()["count"] == 10
    assert client.get(url + "?state=success").json()["count"] == 0
    assert client.get(url + "?state=bogus").status_code == 400


def test_the_run_page_answers_in_a_fixed_number_of_queries(api, owner, drive):
    pipeline = save(owner, FANOUT).pipeline
    run = services.run_submit(user=owner, pipeline=pipeline)
    client = api(owner)
    url = f"/api/v1/pipeline-runs/{run.public_id}/"
    client.get(url)
    with CaptureQueriesContext(connection) as before:
        client.get(url)
    drive.tick()
    assert len(jobs_of(run, "shard")) == 3
    with CaptureQueriesContext(connection) as after:
        body = client.get(url).json()
    assert len(body["steps"][0]["jobs"]) == 3 and body["steps"][0]["items"] == [1, 2, 3]
    assert len(after) == len(before)


def test_only_the_owner_or_a_team_admin_stops_a_run(api, people, chain, drive):
    run = services.run_submit(user=people["owner"], pipeline=chain)
    drive.tick()
    url = f"/api/v1/pipeline-runs/{run.public_id}/stop/"
    response = post(api(people["mate"]), url)
    assert response.status_code == 403
    assert not PipelineRun.objects.get(pk=run.pk).stop_requested
    response = post(api(people["team_admin"]), url)
    assert response.status_code == 200 and response.json()["stop_requested"] is True
    drive.tick()
    assert PipelineRun.objects.get(pk=run.pk).state == RunState.STOPPED
    again = post(api(people["owner"]), url)
    assert again.status_code == 409 and "ended" in again.json()["detail"]


def test_retry_a_failed_step_is_the_owners_or_a_team_admins(api, people, chain, drive):
    run = services.run_submit(user=people["owner"], pipeline=chain)
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[0], "failed", exit_code=1)
    drive.tick()
    assert states(run) == {"pretrain": "failed", "finetune": "skipped"}
    url = f"/api/v1/pipeline-runs/{run.public_id}/retry/"
    assert post(api(people["mate"]), url, {"step": "pretrain"}).status_code == 403
    assert post(api(people["owner"]), url, {"step": "nope"}).json() == {"step": ["No step 'nope' in this run."]}
    assert post(api(people["owner"]), url, {}).status_code == 400
    assert states(run) == {"pretrain": "failed", "finetune": "skipped"}
    response = post(api(people["owner"]), url, {"step": "pretrain"})
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "running"
    assert [s["state"] for s in response.json()["steps"]] == ["waiting", "waiting"]
    # A step that did not fail is refused: 409, nothing changed.
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[1], files={"model_dir/loss.txt": "1"})
    drive.tick()
    refused = post(api(people["owner"]), url, {"step": "pretrain"})
    assert refused.status_code == 409 and states(run)["pretrain"] == "success"


def test_rerun_from_a_step_makes_a_new_run_that_reuses_what_came_before(api, people, chain, drive):
    run = services.run_submit(user=people["owner"], pipeline=chain)
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[0], files={"model_dir/loss.txt": "0.25"})
    drive.tick()
    drive.end(jobs_of(run, "finetune")[0], "failed", exit_code=2)
    drive.tick()
    url = f"/api/v1/pipeline-runs/{run.public_id}/rerun-from/"
    before = counts()
    assert post(api(people["mate"]), url, {"step": "nope"}).status_code == 400
    assert counts() == before
    response = post(api(people["mate"]), url, {"step": "finetune"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rerun_of"] == run.public_id and body["rerun_from"] == "finetune" and body["owner"] == "mate"
    pretrain = body["steps"][0]
    assert pretrain["state"] == "cached" and pretrain["cached_from"] == run.public_id


# --- schedules ----------------------------------------------------------------------------------------------


def test_schedules_made_changed_paused_backfilled_and_deleted(api, people, chain):
    owner, mate, admin = (api(people[r]) for r in ("owner", "mate", "team_admin"))
    url = f"/api/v1/pipelines/{chain.pk}/schedules/"
    made = post(owner, url, {"name": "nightly", "cron": "0 3 * * *", "timezone": "Asia/Shanghai", "params": {"lr": 1}})
    assert made.status_code == 201, made.json()
    body = made.json()
    assert (body["name"], body["owner"], body["paused"], body["concurrency"]) == ("nightly", "owner", False, "allow")
    assert body["next_time"].endswith(("19:00:00Z", "19:00:00+00:00"))
    pk = body["id"]
    assert [s["name"] for s in mate.get(url).json()] == ["nightly"]

    detail = f"/api/v1/pipeline-schedules/{pk}/"
    assert mate.patch(detail, {"paused": True}, format="json").status_code == 403
    assert mate.delete(detail).status_code == 403
    paused = admin.patch(detail, {"paused": True}, format="json")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert Schedule.objects.get(pk=pk).paused

    backfill = post(owner, f"{detail}backfill/", {"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T23:59:59Z"})
    assert backfill.status_code == 201, backfill.json()
    assert backfill.json()["count"] == 3
    assert [r["schedule"] for r in backfill.json()["runs"]] == [pk] * 3
    # The same range again makes nothing new.
    assert (
        post(owner, f"{detail}backfill/", {"start": "2026-01-01T00:00Z", "end": "2026-01-03T23:59Z"}).json()["count"]
        == 0
    )
    assert PipelineRun.objects.filter(schedule_id=pk).count() == 3

    assert owner.delete(detail).status_code == 204
    assert not Schedule.objects.filter(pk=pk).exists()
    assert PipelineRun.objects.count() == 3  # its runs stay
    assert owner.get(detail).status_code == 404


def test_bad_schedule_input_is_400_by_field_and_changes_nothing(api, owner, chain):
    url = f"/api/v1/pipelines/{chain.pk}/schedules/"
    schedule = services.schedule_save(user=owner, pipeline=chain, data={"name": "nightly", "cron": "0 3 * * *"})
    before = counts()
    cases = [
        ({"name": "x", "cron": "every day"}, "cron"),
        ({"name": "x", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "Bad Name", "cron": "* * * * *"}, "name"),
        ({"cron": "* * * * *"}, "name"),
        ({"name": "x", "cron": "* * * * *", "color": "red"}, "color"),
        ({"name": "x", "cron": "* * * * *", "concurrency": "sometimes"}, "concurrency"),
        ({"name": "x", "cron": "* * * * *", "max_active": 0}, "max_active"),
        ({"name": "x", "cron": "* * * * *", "params": {"lr": "fast"}}, "params.lr"),
        ({"name": "nightly", "cron": "* * * * *"}, "name"),
        ({"name": "x", "cron": 5, "timezone": 7}, "cron"),
    ]
    for body, field in cases:
        response = post(api(owner), url, body)
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    detail = f"/api/v1/pipeline-schedules/{schedule.pk}/"
    for body, field in (({"cron": "nope"}, "cron"), ({"paused": "maybe"}, "paused"), ({"owner": "mate"}, "owner")):
        response = api(owner).patch(detail, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    backfill = f"{detail}backfill/"
    for body, field in (
        ({"start": "2026-01-02T00:00Z", "end": "2026-01-01T00:00Z"}, "end"),
        ({"start": "yesterday", "end": "2026-01-01T00:00Z"}, "start"),
        ({"start": "0001-01-01T00:00Z", "end": "2026-01-01T00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00Z"}, "end"),
    ):
        response = post(api(owner), backfill, body)
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    every_minute = services.schedule_save(user=owner, pipeline=chain, data={"name": "often", "cron": "* * * * *"})
    response = post(api(owner), f"/api/v1/pipeline-schedules/{every_minute.pk}/backfill/", {
        "start": "2026-01-01T00:00Z", "end": "2026-01-31T00:00Z",
    })  # fmt: skip
    assert response.status_code == 400 and "end" in response.json()
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.paused) == ("0 3 * * *", False)
    assert counts()[:5] == before[:5] and Schedule.objects.count() == before[5] + 1


def test_odd_bodies_are_answered_400_never_500(api, owner, chain):
    client = api(owner)
    urls = [
        "/api/v1/pipelines/",
        "/api/v1/pipelines/validate/",
        f"/api/v1/pipelines/{chain.pk}/runs/",
        f"/api/v1/pipelines/{chain.pk}/schedules/",
    ]
    bodies = ["[]", '"text"', "null", "{", '{"spec": null}', '{"spec": {"steps": "x"}}', '{"params": null}']
    for url in urls:
        for text in bodies:
            response = client.generic("POST", url, text.encode(), content_type="application/json")
            assert response.status_code in (201, 400), (url, text, response.status_code)
    assert client.get("/api/v1/pipelines/999999999/").status_code == 404
    assert client.get("/api/v1/pipeline-runs/r-00000000/").status_code == 404
    assert json.loads(client.get("/api/v1/pipelines/?team=").content) != []


def test_the_pipelines_list_answers_in_a_fixed_number_of_queries(api, owner, team_admin, fake_backend):
    client = api(owner)
    save(owner, CHAIN)
    client.get("/api/v1/pipelines/")
    with CaptureQueriesContext(connection) as one:
        assert len(client.get("/api/v1/pipelines/").json()) == 1
    for name in ("second", "third", "fourth"):
        save(team_admin, CHAIN.replace("name: chain", f"name: {name}"))
    with CaptureQueriesContext(connection) as four:
        body = client.get("/api/v1/pipelines/").json()
    assert [(p["name"], p["owner"]) for p in body][:2] == [("chain", "owner"), ("fourth", "teamadmin")]
    assert len(four) == len(one)
