"""A run's step jobs in the jobs pages: the list links back to the run, the job page names its run and step."""

from __future__ import annotations

from pipelines import services
from pipelines.tests.test_engine import RETRY
from testing.pipelines import CHAIN, jobs_of, save


def test_the_jobs_list_links_a_step_job_back_to_its_run(owner, mate, outsider, client, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    [pretrain] = jobs_of(run, "pretrain")
    client.force_login(mate)
    page = client.get("/jobs/").content.decode()
    assert "pipeline chain · pretrain" in page
    assert f'href="/pipelines/runs/{run.public_id}/"' in page
    detail = client.get(f"/jobs/{pretrain.public_id}/").content.decode()
    assert 'id="pipeline-panel"' in detail and run.public_id in detail and "<strong>pretrain</strong>" in detail
    client.force_login(outsider)
    assert client.get(f"/jobs/{pretrain.public_id}/").status_code == 404
    assert run.public_id not in client.get("/jobs/").content.decode()


def test_a_retried_job_says_its_attempt(owner, client, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, RETRY).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "fetch")[0], "failed", exit_code=1)
    drive.tick(2)
    second = jobs_of(run, "fetch")[1]
    client.force_login(owner)
    assert "attempt 2" in client.get(f"/jobs/{second.public_id}/").content.decode()
