"""A run's life on Argo against the fake API server: start creates the Workflow in the team's namespace; the test
plays Argo's controller (the Workflow's phase and nodes); sync moves the steps and the run, records outputs and
each attempt's job (unknown, submitted by the workflow); stop patches the Workflow's shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Job, JobEvent
from jobs.state import JobState
from pipelines import argo
from pipelines.models import PipelineRun, RunState, StepJob, StepState
from pipelines.tests.test_argo import JOBS, argo_cluster, make_run
from testing.fakekube import ARGO_WORKFLOWS, NS

STEPS = [
    {"name": "prep", "job": JOBS["batch"], "outputs": {"parameters": {"rows": "model_dir/rows.txt"}}},
    {"name": "train", "depends": "prep", "retry": {"limit": 2},
     "job": {**JOBS["pytorch"], "env": {"ROWS": "{{steps.prep.outputs.parameters.rows}}"}},
     "outputs": {"parameters": {"acc": "model_dir/acc.txt"}}},
    {"name": "deploy", "depends": "train", "when": "steps.train.outputs.parameters.acc >= 0.9",
     "job": JOBS["batch"]},
]  # fmt: skip


def node(wf: str, name: str, template: str, phase: str, *, kind: str = "Pod", **fields: Any) -> dict[str, Any]:
    return {"id": f"{wf}-{abs(hash(name)) % 10**8}", "name": name, "displayName": name.rsplit(".", 1)[-1],
            "type": kind, "templateName": template, "phase": phase, "startedAt": "2025-01-01T00:00:00Z", **fields}  # fmt: skip


def nodes(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def workflow_lists(kube) -> int:
    return sum(1 for r in kube.journal if r.method == "GET" and r.path.endswith("/workflows"))


@pytest.fixture
def run(kube, owner, team):
    return make_run(owner, team, argo_cluster(kube), STEPS)


def test_a_run_lives_on_argo(kube, run, owner):
    compiled = argo.start(run)
    run.refresh_from_db()
    assert run.workflow == run.public_id
    stored = kube.get(*ARGO_WORKFLOWS, NS, run.workflow)
    assert stored is not None and stored["spec"]["entrypoint"] == "main"
    assert stored["metadata"]["labels"]["easyai.io/pipeline-run"] == run.public_id
    posted = [r for r in kube.journal if r.method == "POST" and r.path.endswith("/workflows")]
    assert len(posted) == 1 and posted[0].query.get("fieldValidation") == "Strict"

    wf = run.workflow
    prep_stem = compiled.plan["prep"]["jobs"][0]["stem"]
    train_stem = compiled.plan["train"]["jobs"][0]["stem"]
    # prep ended, train's first attempt failed and its second runs.
    kube.set_workflow(NS, wf, phase="Running", nodes=nodes(
        node(wf, wf, "main", "Running", kind="DAG"),
        node(wf, f"{wf}.prep", "job-prep", "Succeeded", finishedAt="2025-01-01T00:05:00Z",
             outputs={"parameters": [{"name": "rows", "value": "1200"}], "exitCode": "0",
                      "result": "loading\n1200 rows written\n"}),
        node(wf, f"{wf}.train", "step-train", "Running", kind="Steps"),
        node(wf, f"{wf}.train[0].job", "job-train", "Running", kind="Retry"),
        node(wf, f"{wf}.train[0].job(0)", "job-train", "Failed", message="failure condition matched",
             inputs={"parameters": [{"name": "in-0", "value": "1200"}]}),
        node(wf, f"{wf}.train[0].job(1)", "job-train", "Running",
             inputs={"parameters": [{"name": "in-0", "value": "1200"}]}),
    ))  # fmt: skip
    before = workflow_lists(kube)
    argo.sync([run])
    assert workflow_lists(kube) == before + 1  # one list call for the cluster, whatever the runs
    run.refresh_from_db()
    steps = {s.name: s for s in run.steps.all()}
    assert run.state == RunState.RUNNING
    assert steps["prep"].state == StepState.SUCCESS
    assert steps["prep"].outputs["parameters"] == {
        "job_id": f"{prep_stem}0", "exit_code": 0, "stdout": "1200 rows written", "rows": "1200",
    }  # fmt: skip
    assert steps["train"].state == StepState.RETRYING
    assert steps["deploy"].state == StepState.WAITING
    # Every attempt that started is a real EasyAI job, recorded as submitted (the cluster's sync observes it).
    prep_job = Job.objects.get(public_id=f"{prep_stem}0")
    assert prep_job.state == JobState.UNKNOWN and prep_job.framework == "batch" and prep_job.owner == owner
    event = JobEvent.objects.get(job=prep_job)
    assert (event.from_state, event.to_state, event.reason) == ("queued", "unknown", "SubmittedByWorkflow")
    attempts = StepJob.objects.filter(step=steps["train"]).order_by("attempt")
    assert [(a.attempt, a.job.public_id, a.outcome) for a in attempts] == [
        (1, f"{train_stem}0", "failed"), (2, f"{train_stem}1", ""),
    ]  # fmt: skip
    assert attempts[1].job.spec["env"]["ROWS"] == "1200"  # the value Argo passed, not the stand-in
    assert attempts[1].job.max_retries == 0

    # train succeeds with acc 0.8; deploy's condition is false: Argo skips it and the Workflow succeeds.
    kube.set_workflow(NS, wf, phase="Succeeded", nodes=nodes(
        node(wf, wf, "main", "Succeeded", kind="DAG"),
        node(wf, f"{wf}.prep", "job-prep", "Succeeded", outputs={"parameters": [{"name": "rows", "value": "1200"}]}),
        node(wf, f"{wf}.train", "step-train", "Succeeded", kind="Steps", finishedAt="2025-01-01T01:00:00Z",
             outputs={"parameters": [{"name": "acc", "value": "0.8"}, {"name": "job-id", "value": f"{train_stem}1"}]}),
        node(wf, f"{wf}.train[0].job", "job-train", "Succeeded", kind="Retry"),
        node(wf, f"{wf}.train[0].job(0)", "job-train", "Failed", inputs={"parameters": [{"name": "in-0", "value": "1200"}]}),
        node(wf, f"{wf}.train[0].job(1)", "job-train", "Succeeded",
             inputs={"parameters": [{"name": "in-0", "value": "1200"}]}),
        node(wf, f"{wf}.deploy", "job-deploy", "Skipped", kind="Skipped", message="when 'false' evaluated false"),
    ))  # fmt: skip
    argo.sync([run])
    argo.sync([run])  # a second pass changes nothing and records no job twice
    run.refresh_from_db()
    steps = {s.name: s for s in run.steps.all()}
    assert run.state == RunState.SUCCESS
    assert steps["train"].state == StepState.SUCCESS
    assert steps["train"].outputs["parameters"]["acc"] == "0.8"
    assert steps["train"].outputs["parameters"]["job_id"] == f"{train_stem}1"
    assert steps["deploy"].state == StepState.SKIPPED
    assert StepJob.objects.filter(step__run=run).count() == 3
    assert list(StepJob.objects.filter(step=steps["train"]).order_by("attempt").values_list("outcome", flat=True)) == [
        "failed", "success",
    ]  # fmt: skip
    assert not Job.objects.filter(public_id__startswith=compiled.plan["deploy"]["jobs"][0]["stem"]).exists()


def test_stop_patches_the_workflow_and_sync_records_the_run_stopped(kube, run):
    argo.start(run)
    run.refresh_from_db()
    wf = run.workflow
    argo.stop(run)
    assert kube.get(*ARGO_WORKFLOWS, NS, wf)["spec"]["shutdown"] == "Stop"
    argo.stop(run, terminate=True)
    assert kube.get(*ARGO_WORKFLOWS, NS, wf)["spec"]["shutdown"] == "Terminate"
    PipelineRun.objects.filter(pk=run.pk).update(stop_requested=True)
    run.refresh_from_db()
    kube.set_workflow(NS, wf, phase="Failed", message="Stopped with strategy 'Terminate'", nodes=nodes(
        node(wf, wf, "main", "Failed", kind="DAG"),
        node(wf, f"{wf}.prep", "job-prep", "Failed", message="Stopped with strategy 'Terminate'"),
    ))  # fmt: skip
    argo.sync([run])
    run.refresh_from_db()
    steps = {s.name: s.state for s in run.steps.all()}
    assert run.state == RunState.STOPPED
    assert steps == {"prep": StepState.STOPPED, "train": StepState.STOPPED, "deploy": StepState.STOPPED}


def test_a_repeated_start_finds_its_own_workflow_and_a_vanished_one_fails_the_run(kube, run):
    argo.start(run)
    argo.start(run)  # a redelivered start: the 409 is the run's own Workflow
    assert len(kube.of_kind(*ARGO_WORKFLOWS)) == 1
    run.refresh_from_db()
    kube.objects.pop((*ARGO_WORKFLOWS, NS, run.workflow))
    argo.sync([run])
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.reason == "WorkflowMissing"
