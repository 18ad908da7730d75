"""The pipelines pages on the fake backend: every page for the owner, a team-mate and a team admin, 404 for an
outsider; the editor's check as you type; saving a version; the Run form's params; schedules; and the run
page's Stop, Retry step and Rerun from here with the permission matrix."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from pipelines import services
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, RunState, Schedule, StepState
from testing.pipelines import jobs_of, save, states, step_of

SPEC = """
name: chain
team: vision
description: two steps and a branch
params:
  lr: 0.1
  epochs: {type: int, default: 3}
  tag: {type: string}
  fast: {type: bool, default: false}
steps:
  - name: prepare
    outputs:
      parameters: {rows: model_dir/rows.txt}
    job: {framework: batch, command: "echo {{params.lr}} {{params.tag}}", roles: {main: {}}}
  - name: train
    depends: [prepare]
    job: {framework: batch, command: "echo train {{steps.prepare.outputs.parameters.rows}}", roles: {main: {}}}
  - name: report
    depends: "train.completed"
    job: {framework: batch, command: "echo report", roles: {main: {}}}
"""


@pytest.fixture
def pipeline(owner, fake_backend) -> Pipeline:
    return save(owner, SPEC).pipeline


@pytest.fixture
def run(owner, pipeline) -> PipelineRun:
    return services.run_submit(user=owner, pipeline=pipeline, params={"tag": "a"})


def client_for(client, user):
    client.force_login(user)
    return client


def _pages(pipeline: Pipeline, run: PipelineRun) -> list[str]:
    return [
        reverse("pipeline-list"),
        reverse("pipeline-new"),
        reverse("pipeline-detail", args=[pipeline.pk]),
        reverse("pipeline-edit", args=[pipeline.pk]),
        reverse("pipeline-version", args=[pipeline.pk, 1]),
        reverse("pipeline-run-detail", args=[run.public_id]),
        reverse("pipeline-run-state", args=[run.public_id]),
    ]


@pytest.mark.parametrize("who", ["owner", "mate", "team_admin"])
def test_team_members_see_every_page(client, people, pipeline, run, drive, who):
    drive.tick()
    client_for(client, people[who])
    for url in _pages(pipeline, run):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    listing = client.get(reverse("pipeline-list")).content.decode()
    assert "chain" in listing and run.public_id in listing
    page = client.get(reverse("pipeline-run-detail", args=[run.public_id])).content.decode()
    assert 'data-step="prepare" data-step-state="running"' in page
    assert jobs_of(run, "prepare")[0].public_id in page


def test_an_outsider_gets_404_on_every_page_and_json_view(client, outsider, pipeline, run):
    client_for(client, outsider)
    listing = client.get(reverse("pipeline-list"))
    assert listing.status_code == 200 and "chain" not in listing.content.decode()
    for url in _pages(pipeline, run)[2:]:
        assert client.get(url).status_code == 404, url
    posts = [
        (reverse("pipeline-edit", args=[pipeline.pk]), {"source": SPEC}),
        (reverse("pipeline-run", args=[pipeline.pk]), {"params-tag": "x"}),
        (reverse("pipeline-schedule-add", args=[pipeline.pk]), {"name": "n", "cron": "0 3 * * *"}),
        (reverse("pipeline-run-stop", args=[run.public_id]), {}),
        (reverse("pipeline-run-retry", args=[run.public_id]), {"step": "prepare"}),
        (reverse("pipeline-run-rerun", args=[run.public_id]), {"step": "prepare"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    assert PipelineRun.objects.count() == 1 and PipelineVersion.objects.count() == 1
    run.refresh_from_db()
    assert not run.stop_requested


def test_unknown_numbers_and_ids_are_404_not_errors(client, owner, pipeline, run):
    client_for(client, owner)
    big = "9" * 25
    for url in (
        f"/pipelines/{big}/",
        f"/pipelines/{pipeline.pk}/versions/{big}/",
        f"/pipelines/{pipeline.pk}/edit/?version={big}",
        "/pipelines/runs/r-nowhere/state.json",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/pipelines/{pipeline.pk}/schedules/{big}/pause/").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, pipeline, run):
    response = client.get(reverse("pipeline-run-state", args=[run.public_id]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_list_reads_in_a_fixed_number_of_queries(client, owner, fake_backend, django_assert_max_num_queries):
    for i in range(6):
        version = save(owner, SPEC.replace("name: chain", f"name: chain-{i}"))
        services.run_submit(user=owner, pipeline=version.pipeline, params={"tag": "x"})
    client_for(client, owner)
    client.get(reverse("pipeline-list"))  # the session and the user, read once
    with django_assert_max_num_queries(12):
        response = client.get(reverse("pipeline-list"))
    assert response.content.decode().count('data-run-state="queued"') == 6


# --- the editor ---------------------------------------------------------------------------------


def test_the_new_editor_is_seeded_with_an_example_that_validates(client, owner):
    client_for(client, owner)
    page = client.get(reverse("pipeline-new")).content.decode()
    assert "name: train-and-evaluate" in page
    from pipelines.views import EXAMPLE

    answer = client.post(reverse("pipeline-validate"), {"source": EXAMPLE})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] and [s["name"] for s in body["steps"]] == ["prepare", "train", "register", "report"]
    assert {"source": "train", "target": "register"} in body["graph"]["edges"]


def test_validation_answers_every_error_by_path(client, owner):
    client_for(client, owner)
    bad = SPEC.replace("depends: [prepare]", "depends: [prepare, nowhere]").replace(
        'command: "echo report"', 'command: "echo report", bogus: 1'
    )
    answer = client.post(reverse("pipeline-validate"), {"source": bad})
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert "steps.1.depends" in errors and "nowhere" in " ".join(errors["steps.1.depends"])
    assert errors["steps.2.job.bogus"] == ["unknown field"]


@pytest.mark.parametrize("text", ["", "a: [", "[]", "null", "steps: 3", "name: x\nsteps: [{}]", "\x00"])
def test_validation_of_any_text_is_an_answer_not_an_error(client, owner, text):
    client_for(client, owner)
    answer = client.post(reverse("pipeline-validate"), {"source": text})
    assert answer.status_code == 400
    assert answer.json()["errors"]


def test_validation_is_csrf_protected(owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(reverse("pipeline-validate"), {"source": SPEC}).status_code == 403


def test_save_makes_a_new_version(client, owner, pipeline):
    client_for(client, owner)
    changed = SPEC.replace("two steps and a branch", "now described")
    response = client.post(reverse("pipeline-edit", args=[pipeline.pk]), {"source": changed})
    assert response.status_code == 302 and response["Location"] == reverse("pipeline-detail", args=[pipeline.pk])
    pipeline.refresh_from_db()
    assert pipeline.latest == 2 and pipeline.description == "now described"
    assert pipeline.versions.get(number=2).source == changed
    page = client.get(reverse("pipeline-version", args=[pipeline.pk, 2])).content.decode()
    assert "now described" in page


def test_a_new_pipeline_is_saved_from_the_new_page(client, owner, fake_backend):
    client_for(client, owner)
    response = client.post(reverse("pipeline-new"), {"source": SPEC.replace("name: chain", "name: fresh")})
    made = Pipeline.objects.get(name="fresh")
    assert response.status_code == 302 and response["Location"] == reverse("pipeline-detail", args=[made.pk])
    assert made.owner == owner and made.latest == 1


def test_a_bad_spec_is_shown_by_path_and_saves_nothing(client, owner, pipeline):
    client_for(client, owner)
    response = client.post(reverse("pipeline-edit", args=[pipeline.pk]), {"source": SPEC + "  - name: 9bad\n"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-path="steps.3.name"' in page
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 1


def test_a_mate_cannot_save_a_version_of_someone_elses_pipeline(client, mate, pipeline):
    client_for(client, mate)
    page = client.get(reverse("pipeline-edit", args=[pipeline.pk])).content.decode()
    assert 'id="copy-note"' in page
    response = client.post(reverse("pipeline-edit", args=[pipeline.pk]), {"source": SPEC})
    assert response.status_code == 400
    assert "Only the pipeline&#x27;s owner or a team admin" in response.content.decode()
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 1


def test_a_team_admin_saves_a_version(client, team_admin, pipeline):
    client_for(client, team_admin)
    response = client.post(reverse("pipeline-edit", args=[pipeline.pk]), {"source": SPEC})
    assert response.status_code == 302
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 2


# --- the Run form -------------------------------------------------------------------------------


def test_the_run_form_has_typed_inputs_with_defaults(client, owner, pipeline):
    client_for(client, owner)
    page = client.get(reverse("pipeline-detail", args=[pipeline.pk])).content.decode()
    assert 'name="params-lr"' in page and 'value="0.1"' in page
    assert 'type="number" name="params-epochs" value="3"' in page
    assert 'type="checkbox" name="params-fast"' in page


@pytest.mark.parametrize("who", ["owner", "mate"])
def test_the_run_form_runs_with_its_params(client, people, pipeline, who):
    client_for(client, people[who])
    response = client.post(
        reverse("pipeline-run", args=[pipeline.pk]),
        {"params-lr": "0.5", "params-epochs": "7", "params-tag": "exp", "params-fast": "on"},
    )
    run = PipelineRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("pipeline-run-detail", args=[run.public_id])
    assert run.params == {"lr": 0.5, "epochs": 7, "tag": "exp", "fast": True}
    assert run.owner == people[who]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"params-lr": "fast", "params-tag": "x"}, "params-lr", "number"),
        ({"params-epochs": "2.5", "params-tag": "x"}, "params-epochs", "whole number"),
        ({"params-lr": "0.1"}, "params-tag", "required"),
    ],
)
def test_bad_params_show_the_error_at_the_field_and_start_nothing(client, owner, pipeline, data, field, words):
    client_for(client, owner)
    response = client.post(reverse("pipeline-run", args=[pipeline.pk]), data)
    assert response.status_code == 400
    page = response.content.decode()
    start = page.index(f'data-field="{field}"')
    assert words in page[start : start + 200].lower()
    assert PipelineRun.objects.count() == 0


def test_a_service_refusal_of_params_comes_back_on_its_field(client, owner, fake_backend):
    text = SPEC.replace("tag: {type: string}", "tag: {type: list}")
    version = save(owner, text)
    client_for(client, owner)
    response = client.post(reverse("pipeline-run", args=[version.pipeline.pk]), {"params-tag": "not json"})
    assert response.status_code == 400
    assert 'data-field="params-tag"' in response.content.decode()
    response = client.post(reverse("pipeline-run", args=[version.pipeline.pk]), {"params-tag": '["a", "b"]'})
    assert response.status_code == 302
    assert PipelineRun.objects.get().params["tag"] == ["a", "b"]


# --- schedules ----------------------------------------------------------------------------------


def test_a_schedule_is_added_paused_and_resumed(client, owner, mate, pipeline):
    client_for(client, mate)
    url = reverse("pipeline-schedule-add", args=[pipeline.pk])
    response = client.post(
        url, {"name": "nightly", "cron": "0 3 * * *", "timezone": "Asia/Shanghai", "concurrency": "forbid",
              "max_active": "1", "catch_up": "on", "params": '{"tag": "night"}'}
    )  # fmt: skip
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    assert (schedule.owner, schedule.timezone, schedule.params) == (mate, "Asia/Shanghai", {"tag": "night"})
    assert schedule.next_time is not None
    page = client.get(reverse("pipeline-detail", args=[pipeline.pk])).content.decode()
    assert 'data-schedule="nightly" data-paused="false"' in page
    client.post(reverse("pipeline-schedule-pause", args=[pipeline.pk, schedule.pk, "pause"]))
    schedule.refresh_from_db()
    assert schedule.paused
    # Another mate may not pause someone else's schedule (its owner, the pipeline's owner or an admin may).
    client_for(client, owner)
    client.post(reverse("pipeline-schedule-pause", args=[pipeline.pk, schedule.pk, "resume"]))
    schedule.refresh_from_db()
    assert not schedule.paused


def test_a_mate_cannot_pause_another_mates_schedule(client, owner, mate, pipeline):
    schedule = services.schedule_save(user=owner, pipeline=pipeline, data={"name": "n", "cron": "0 3 * * *"})
    client_for(client, mate)
    page = client.get(reverse("pipeline-detail", args=[pipeline.pk])).content.decode()
    assert reverse("pipeline-schedule-pause", args=[pipeline.pk, schedule.pk, "pause"]) not in page
    response = client.post(reverse("pipeline-schedule-pause", args=[pipeline.pk, schedule.pk, "pause"]), follow=True)
    assert "Only the schedule" in response.content.decode()
    schedule.refresh_from_db()
    assert not schedule.paused


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "n", "cron": "every day", "timezone": "UTC", "concurrency": "allow", "max_active": "1"}, "cron"),
        ({"name": "n", "cron": "0 3 * * *", "timezone": "Mars/Base", "concurrency": "allow", "max_active": "1"},
         "timezone"),
        ({"name": "n", "cron": "0 3 * * *", "timezone": "UTC", "concurrency": "allow", "max_active": "1",
          "params": '{"nope": 1}'}, "params"),
        ({"name": "n", "cron": "0 3 * * *", "timezone": "UTC", "concurrency": "allow", "max_active": "0"},
         "max_active"),
    ],
)  # fmt: skip
def test_a_bad_schedule_shows_the_error_at_its_field(client, owner, pipeline, data, field):
    client_for(client, owner)
    response = client.post(reverse("pipeline-schedule-add", args=[pipeline.pk]), data)
    assert response.status_code == 400
    assert f'data-field="{field}"' in response.content.decode()
    assert Schedule.objects.count() == 0


def test_an_unknown_schedule_action_is_404(client, owner, pipeline):
    schedule = services.schedule_save(user=owner, pipeline=pipeline, data={"name": "n", "cron": "0 3 * * *"})
    client_for(client, owner)
    assert client.post(reverse("pipeline-schedule-pause", args=[pipeline.pk, schedule.pk, "delete"])).status_code == 404


# --- a run's page and its buttons ---------------------------------------------------------------


def test_the_state_json_follows_the_run(client, mate, run, drive):
    client_for(client, mate)
    url = reverse("pipeline-run-state", args=[run.public_id])
    assert client.get(url).json()["steps"]["prepare"]["state"] == "waiting"
    drive.tick()
    body = client.get(url).json()
    assert body["active"] and body["steps"]["prepare"]["state"] == "running"
    [job] = body["steps"]["prepare"]["jobs"]
    assert job["url"] == reverse("job-detail", args=[job["id"]])
    drive.end(jobs_of(run, "prepare")[0], files={"model_dir/rows.txt": "100\n"})
    drive.tick()
    assert client.get(url).json()["steps"]["prepare"]["state"] == "success"
    page = client.get(reverse("pipeline-run-detail", args=[run.public_id])).content.decode()
    assert 'data-output="rows">100' in page
    assert 'data-param="tag">a' in page


def _fail_prepare(run, drive) -> None:
    drive.tick()
    drive.end(jobs_of(run, "prepare")[0], state="failed", exit_code=1)
    drive.tick()
    assert step_of(run, "prepare").state == StepState.FAILED


@pytest.mark.parametrize(("who", "allowed"), [("owner", True), ("team_admin", True), ("mate", False)])
def test_stop_follows_the_permission_matrix(client, people, run, drive, who, allowed):
    drive.tick()
    client_for(client, people[who])
    page = client.get(reverse("pipeline-run-detail", args=[run.public_id])).content.decode()
    assert ('id="run-stop"' in page) == allowed
    response = client.post(reverse("pipeline-run-stop", args=[run.public_id]), follow=True)
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.stop_requested == allowed
    if allowed:
        drive.tick(2)
        run.refresh_from_db()
        assert run.state == RunState.STOPPED
    else:
        assert "Only the run&#x27;s owner or a team admin stops it." in response.content.decode()


def test_stopping_an_ended_run_is_a_message(client, owner, run, drive):
    services.run_stop(run=run, user=owner)
    drive.tick(2)
    client_for(client, owner)
    response = client.post(reverse("pipeline-run-stop", args=[run.public_id]), follow=True)
    assert response.status_code == 200 and "The run has ended" in response.content.decode()


@pytest.mark.parametrize(("who", "allowed"), [("owner", True), ("team_admin", True), ("mate", False)])
def test_retry_step_follows_the_permission_matrix(client, people, run, drive, who, allowed):
    _fail_prepare(run, drive)
    client_for(client, people[who])
    page = client.get(reverse("pipeline-run-detail", args=[run.public_id])).content.decode()
    assert ('data-action="retry"' in page) == allowed
    response = client.post(reverse("pipeline-run-retry", args=[run.public_id]), {"step": "prepare"}, follow=True)
    assert response.status_code == 200
    assert step_of(run, "prepare").state == (StepState.WAITING if allowed else StepState.FAILED)
    if allowed:
        drive.tick()
        assert len(jobs_of(run, "prepare")) == 2
    else:
        assert "Only the run&#x27;s owner or a team admin retries" in response.content.decode()


def test_retrying_a_step_that_did_not_fail_is_a_message(client, owner, run, drive):
    drive.tick()
    client_for(client, owner)
    for step in ("prepare", "nowhere"):
        response = client.post(reverse("pipeline-run-retry", args=[run.public_id]), {"step": step}, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain[-1][0] == reverse("pipeline-run-detail", args=[run.public_id])
        assert "alert-danger" in response.content.decode()
    assert states(run)["prepare"] == "running"


@pytest.mark.parametrize("who", ["owner", "mate", "team_admin"])
def test_rerun_from_a_step_makes_a_new_run_for_any_member(client, people, run, drive, who):
    drive.tick()
    drive.end(jobs_of(run, "prepare")[0], files={"model_dir/rows.txt": "5"})
    drive.tick()
    client_for(client, people[who])
    response = client.post(reverse("pipeline-run-rerun", args=[run.public_id]), {"step": "train"})
    new = PipelineRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("pipeline-run-detail", args=[new.public_id])
    assert new.owner == people[who] and new.rerun_of == run
    assert states(new) == {"prepare": "cached", "train": "waiting", "report": "waiting"}


def test_rerun_after_a_failed_step_is_refused_with_a_message(client, owner, run, drive):
    _fail_prepare(run, drive)
    client_for(client, owner)
    response = client.post(reverse("pipeline-run-rerun", args=[run.public_id]), {"step": "train"}, follow=True)
    assert "did not succeed" in response.content.decode()
    assert PipelineRun.objects.count() == 1


def test_the_run_page_embeds_the_graph_and_its_state(client, owner, run, drive):
    drive.tick()
    client_for(client, owner)
    page = client.get(reverse("pipeline-run-detail", args=[run.public_id])).content.decode()
    start = page.index('id="pipeline-graph-data"')
    graph = json.loads(page[page.index(">", start) + 1 : page.index("</script>", start)])
    assert [node["id"] for node in graph["nodes"]] == ["prepare", "train", "report"]
    assert {"source": "train", "target": "report"} in graph["edges"]
    assert "vendor/cytoscape/cytoscape.min.js" in page and "<script>" not in page
