"""The operators' admin for pipelines: every page answers, runs are stopped and schedules paused and resumed through
the services, nothing is edited or deleted by hand."""

from __future__ import annotations

import pytest
from django.test import Client

from pipelines import services
from pipelines.models import PipelineRun, Schedule
from testing.pipelines import jobs_of, save

SPEC = """
name: chain
steps:
  - name: first
    job: {framework: batch, command: "true", roles: {main: {}}}
  - name: second
    depends: [first]
    job: {framework: batch, command: "true", roles: {main: {}}}
"""


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def run(owner, drive) -> PipelineRun:
    pipeline = save(owner, SPEC).pipeline
    run = services.run_submit(user=owner, pipeline=pipeline)
    drive.tick()
    assert len(jobs_of(run, "first")) == 1
    return run


def test_the_pipelines_admin_pages_answer(admin_client, owner, run):
    schedule = services.schedule_save(user=owner, pipeline=run.pipeline, data={"name": "nightly", "cron": "0 3 * * *"})
    urls = [
        "/admin/pipelines/pipeline/",
        f"/admin/pipelines/pipeline/{run.pipeline_id}/change/",
        "/admin/pipelines/pipelinerun/",
        "/admin/pipelines/pipelinerun/?state__exact=running&engine__exact=portal",
        f"/admin/pipelines/pipelinerun/?team__id__exact={run.team_id}&q={run.public_id}",
        f"/admin/pipelines/pipelinerun/{run.pk}/change/",
        "/admin/pipelines/schedule/",
        f"/admin/pipelines/schedule/{schedule.pk}/change/",
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(f"/admin/pipelines/pipelinerun/{run.pk}/change/").content.decode()
    assert run.public_id in page and jobs_of(run, "first")[0].public_id in page
    assert "chain" in admin_client.get("/admin/pipelines/pipelinerun/").content.decode()
    # Records, not forms: no add pages.
    assert admin_client.get("/admin/pipelines/pipelinerun/add/").status_code == 403
    assert admin_client.get("/admin/pipelines/pipeline/add/").status_code == 403


def test_stop_selected_runs_goes_through_the_service(admin_client, run, drive):
    response = admin_client.post(
        "/admin/pipelines/pipelinerun/", {"action": "stop_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "1 runs asked to stop." in response.content.decode()
    drive.tick()
    run.refresh_from_db()
    assert run.state == "stopped"
    # A finished run is refused with a message, not an error page.
    response = admin_client.post(
        "/admin/pipelines/pipelinerun/", {"action": "stop_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200 and "has ended" in response.content.decode()


def test_pause_and_resume_selected_schedules(admin_client, owner, run):
    schedule = services.schedule_save(user=owner, pipeline=run.pipeline, data={"name": "nightly", "cron": "0 3 * * *"})
    url = "/admin/pipelines/schedule/"
    admin_client.post(url, {"action": "pause_schedules", "_selected_action": [schedule.pk]})
    assert Schedule.objects.get(pk=schedule.pk).paused
    admin_client.post(url, {"action": "resume_schedules", "_selected_action": [schedule.pk]})
    assert not Schedule.objects.get(pk=schedule.pk).paused
