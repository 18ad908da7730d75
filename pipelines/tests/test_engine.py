"""The portal's engine on the fake backend: outputs passed on, conditions, fan-out and fan-in, retries, reruns,
caching, stop, and starts that happen once however the ticks are delivered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from jobs.models import Job
from pipelines import engine, services
from pipelines.models import Pipeline, PipelineRun, RunState, StepJob, StepState
from testing.pipelines import CHAIN, jobs_of, save, states, step_of


def test_a_chain_passes_outputs_and_the_job_on(owner, drive):
    version = save(owner, CHAIN)
    run = services.run_submit(user=owner, pipeline=version.pipeline, params={"lr": "0.5"})
    drive.tick()
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    assert states(run) == {"pretrain": "running", "finetune": "waiting"}
    [pretrain] = jobs_of(run, "pretrain")
    assert pretrain.spec["command"] == ["/bin/sh", "-c", "echo pretrain 0.5"]
    assert pretrain.name == "chain-pretrain"
    drive.end(pretrain, files={"model_dir/loss.txt": "0.25\n", "log:main-0": "step 1\nlast line\n\n"})
    drive.tick()
    step = step_of(run, "pretrain")
    assert step.state == StepState.SUCCESS
    assert step.outputs["parameters"] == {
        "job_id": pretrain.public_id,
        "exit_code": 0,
        "stdout": "last line",
        "loss": "0.25",
    }
    [finetune] = jobs_of(run, "finetune")
    assert finetune.pre_job_id == pretrain.pk
    assert finetune.spec["command"][-1] == "echo finetune after loss 0.25"
    drive.end(finetune)
    drive.tick()
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.message
    assert run.finished_at is not None


def test_a_missing_output_fails_its_step_and_the_run(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[0])  # no loss.txt
    drive.tick()
    assert states(run) == {"pretrain": "failed", "finetune": "skipped"}
    assert "model_dir/loss.txt was not written" in step_of(run, "pretrain").message
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "pretrain" in run.message


BRANCHES = """
name: branches
params:
  threshold: {type: float, default: 0.9}
steps:
  - name: evaluate
    outputs: {parameters: {accuracy: model_dir/accuracy}}
    job: {framework: batch, command: "true", roles: {main: {}}}
  - name: register
    depends: [evaluate]
    when: "steps.evaluate.outputs.parameters.accuracy >= params.threshold"
    job: {framework: batch, command: "echo register", roles: {main: {}}}
  - name: announce
    depends: [register]
    job: {framework: batch, command: "echo announce", roles: {main: {}}}
  - name: report
    depends: "evaluate && (register.succeeded || register.skipped)"
    job: {framework: batch, command: "echo report", roles: {main: {}}}
"""


@pytest.mark.parametrize(("accuracy", "expected"), [("0.8", "skipped"), ("0.95", "success")])
def test_a_false_condition_skips_its_branch_and_what_depends_only_on_it(owner, drive, accuracy, expected):
    run = services.run_submit(user=owner, pipeline=save(owner, BRANCHES).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "evaluate")[0], files={"model_dir/accuracy": accuracy})
    drive.tick()
    for name in ("register", "announce"):
        for job in jobs_of(run, name):
            drive.end(job)
            drive.tick()
    for job in jobs_of(run, "report"):
        drive.end(job)
    drive.tick()
    assert states(run) == {"evaluate": "success", "register": expected, "announce": expected, "report": "success"}
    if expected == "skipped":
        assert jobs_of(run, "register") == [] and jobs_of(run, "announce") == []
        assert step_of(run, "register").message == "its when is false"
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS


FAN = """
name: fan
steps:
  - name: shards
    outputs: {parameters: {list: model_dir/list.json}}
    job: {framework: batch, command: "true", roles: {main: {}}}
  - name: train
    depends: [shards]
    foreach: "{{steps.shards.outputs.parameters.list}}"
    outputs: {parameters: {score: model_dir/score}}
    job: {framework: batch, command: "train --shard {{item}}", roles: {main: {}}}
  - name: pick
    depends: [train]
    job:
      framework: batch
      command: "pick '{{steps.train.outputs.parameters.score}}' from {{steps.train.job_id}}"
      roles: {main: {}}
"""


def test_a_fan_out_of_three_then_a_fan_in_of_their_outputs(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, FAN).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "shards")[0], files={"model_dir/list.json": '["a", "b", "c"]'})
    drive.tick()
    train = jobs_of(run, "train")
    assert [job.spec["command"][-1] for job in train] == ["train --shard a", "train --shard b", "train --shard c"]
    assert [job.name for job in train] == ["fan-train-0", "fan-train-1", "fan-train-2"]
    assert step_of(run, "train").items == ["a", "b", "c"]
    for job, score in zip(reversed(train), ("0.3", "0.2", "0.1"), strict=True):  # they end in any order
        drive.end(job, files={"model_dir/score": score})
        drive.tick()
    step = step_of(run, "train")
    assert step.state == StepState.SUCCESS
    assert step.outputs["parameters"]["score"] == ["0.1", "0.2", "0.3"]  # in item order
    [pick] = jobs_of(run, "pick")
    ids = ", ".join(f'"{job.public_id}"' for job in train)
    assert pick.spec["command"][-1] == f"""pick '["0.1","0.2","0.3"]' from [{ids.replace(", ", ",")}]"""


RETRY = """
name: flaky
steps:
  - name: fetch
    retry: {limit: 2, backoff: 0}
    job: {framework: batch, command: "fetch", roles: {main: {}}}
"""


def test_a_step_that_fails_once_then_succeeds_under_retry(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, RETRY).pipeline)
    drive.tick()
    [first] = jobs_of(run, "fetch")
    drive.end(first, "failed", exit_code=1)
    drive.tick()  # the failure noted; the retry is due at once (no back-off) and starts
    drive.tick()
    jobs = jobs_of(run, "fetch")
    assert len(jobs) == 2 and jobs[1].pk != first.pk
    assert list(StepJob.objects.filter(step__run=run).values_list("attempt", "outcome")) == [(1, "failed"), (2, "")]
    drive.end(jobs[1])
    drive.tick()
    run.refresh_from_db()
    assert states(run) == {"fetch": "success"} and run.state == RunState.SUCCESS


def test_retries_run_out_and_the_back_off_waits(owner, drive):
    text = RETRY.replace("limit: 2, backoff: 0", "limit: 1, backoff: 60")
    run = services.run_submit(user=owner, pipeline=save(owner, text).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "fetch")[0], "failed", exit_code=1)
    drive.tick(3)
    assert len(jobs_of(run, "fetch")) == 1 and states(run) == {"fetch": "retrying"}
    StepJob.objects.filter(step__run=run).update(retry_at=timezone.now() - timedelta(seconds=1))
    drive.tick()
    [_, second] = jobs_of(run, "fetch")
    drive.end(second, "failed", exit_code=1)
    drive.tick()
    run.refresh_from_db()
    assert states(run) == {"fetch": "failed"} and run.state == RunState.FAILED


def test_rerun_from_a_step_reuses_the_outputs_before_it(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    [pretrain] = jobs_of(run, "pretrain")
    drive.end(pretrain, files={"model_dir/loss.txt": "0.25"})
    drive.tick()
    drive.end(jobs_of(run, "finetune")[0], "failed", exit_code=2)
    drive.tick()
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    again = services.run_rerun_from(run=run, step_name="finetune", user=owner)
    drive.tick()
    assert states(again) == {"pretrain": "cached", "finetune": "running"}
    assert jobs_of(again, "pretrain") == []
    [finetune] = jobs_of(again, "finetune")
    assert finetune.pre_job_id == pretrain.pk  # the earlier run's job, its outputs reused
    assert "loss 0.25" in finetune.spec["command"][-1]
    drive.end(finetune)
    drive.tick()
    again.refresh_from_db()
    assert again.state == RunState.SUCCESS and again.rerun_of_id == run.pk


def test_retry_a_failed_step_in_the_same_run(owner, team_admin, mate, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[0], "failed", exit_code=1)
    drive.tick()
    run.refresh_from_db()
    assert run.state == RunState.FAILED and states(run) == {"pretrain": "failed", "finetune": "skipped"}
    with pytest.raises(PermissionDenied):
        services.run_retry_step(run=run, step_name="pretrain", user=mate)
    services.run_retry_step(run=run, step_name="pretrain", user=team_admin)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and states(run) == {"pretrain": "waiting", "finetune": "waiting"}
    drive.tick()
    jobs = jobs_of(run, "pretrain")
    assert len(jobs) == 2
    drive.end(jobs[1], files={"model_dir/loss.txt": "1"})
    drive.tick()
    drive.end(jobs_of(run, "finetune")[0])
    drive.tick()
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS


CACHED = """
name: cached
steps:
  - name: prepare
    cache: true
    outputs: {artifacts: {data: model_dir/data}}
    job: {framework: batch, command: "prepare", roles: {main: {}}}
  - name: train
    cache: v1
    depends: [prepare]
    job: {framework: batch, command: "train {{steps.prepare.outputs.artifacts.data}}", roles: {main: {}}}
"""


def test_a_second_identical_run_is_all_cache_hits(owner, drive, settings):
    pipeline = save(owner, CACHED).pipeline
    first = services.run_submit(user=owner, pipeline=pipeline)
    drive.tick()
    [prepare] = jobs_of(first, "prepare")
    drive.end(prepare, files={"model_dir/data/part-0": "rows"})
    drive.tick()
    [train] = jobs_of(first, "train")
    assert train.spec["inputs"] == {"prepare_data": f"{prepare.public_id}/model_dir/data"}
    assert train.spec["command"][-1] == f"train {settings.EASYAI_STORAGE_ROOT}/{prepare.public_id}/model_dir/data"
    drive.end(train)
    drive.tick()
    second = services.run_submit(user=owner, pipeline=pipeline)
    drive.tick(2)
    second.refresh_from_db()
    assert states(second) == {"prepare": "cached", "train": "cached"}
    assert second.state == RunState.SUCCESS
    assert Job.objects.count() == 2  # no new job
    assert step_of(second, "train").cached_from == step_of(first, "train")
    # A different input is a miss: the artifact's digest is part of the key.
    third = services.run_submit(
        user=owner, pipeline=save(owner, CACHED.replace('"prepare"', '"prepare --v2"')).pipeline
    )
    drive.tick()
    drive.end(jobs_of(third, "prepare")[0], files={"model_dir/data/part-0": "other rows"})
    drive.tick()
    assert states(third) == {"prepare": "success", "train": "running"}


def test_a_cycle_or_an_unknown_reference_is_refused_and_nothing_recorded(owner):
    cycle = """
name: loop
steps:
  - {name: a, depends: [b], job: {framework: batch, command: "true", roles: {main: {}}}}
  - {name: b, depends: [a], job: {framework: batch, command: "true", roles: {main: {}}}}
"""
    with pytest.raises(ValidationError) as caught:
        save(owner, cycle)
    assert "cycle" in " ".join(caught.value.message_dict["steps.0.depends"])
    unknown = CHAIN.replace("{{steps.pretrain.outputs.parameters.loss}}", "{{steps.pretrain.outputs.parameters.nope}}")
    with pytest.raises(ValidationError) as caught:
        save(owner, unknown)
    assert any(path.startswith("steps.1.job") for path in caught.value.message_dict)
    assert Pipeline.objects.count() == 0 and PipelineRun.objects.count() == 0


def test_starting_a_step_twice_starts_one_job(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    step = step_of(run, "pretrain")
    data = {"name": "x", "framework": "batch", "command": "true", "roles": {"main": {}}, "team": run.team.slug}
    assert engine._start(run, step, 0, 1, data) == ""  # a redelivered start: the row exists, nothing is made
    assert Job.objects.count() == 1 and StepJob.objects.count() == 1


def test_a_worker_killed_between_two_items_loses_nothing(owner, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, FAN).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "shards")[0], files={"model_dir/list.json": '["a", "b", "c"]'})
    real = engine._start
    calls = []

    def dies_after_one(*args):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the worker is killed here
        return real(*args)

    engine._start = dies_after_one
    try:
        with pytest.raises(KeyboardInterrupt):
            drive.tick()
    finally:
        engine._start = real
    assert len(jobs_of(run, "train")) == 1
    drive.tick(2)  # the next ticks start the two missing items, and only them
    train = jobs_of(run, "train")
    assert [job.spec["command"][-1] for job in train] == ["train --shard a", "train --shard b", "train --shard c"]
    assert StepJob.objects.filter(step__name="train").count() == 3


def test_stop_a_run_stops_its_jobs(owner, mate, drive):
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    [pretrain] = jobs_of(run, "pretrain")
    with pytest.raises(PermissionDenied):
        services.run_stop(run=run, user=mate)
    services.run_stop(run=run, user=owner)
    drive.tick()
    run.refresh_from_db()
    pretrain.refresh_from_db()
    assert run.state == RunState.STOPPED
    assert states(run) == {"pretrain": "stopped", "finetune": "stopped"}
    assert pretrain.stop_requested or pretrain.state == "stopped"
    with pytest.raises(services.PipelineActionRefused):
        services.run_stop(run=run, user=owner)


def test_a_sync_pass_that_moved_jobs_ticks_the_engine_at_once(owner, drive):
    from clusters.models import Cluster
    from jobs.signals import sync_pass_finished

    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "pretrain")[0], files={"model_dir/loss.txt": "1"})
    sync_pass_finished.send(Cluster, cluster=drive.backend.cluster, seconds=0.1, failed=False, jobs=1, moved=0)
    assert states(run)["pretrain"] == "running"  # nothing moved: no tick
    sync_pass_finished.send(Cluster, cluster=drive.backend.cluster, seconds=0.1, failed=False, jobs=1, moved=1)
    assert states(run) == {"pretrain": "success", "finetune": "running"}  # the tick ran (tasks run inline here)


REGISTER = """
name: publish
steps:
  - name: train
    job: {framework: batch, command: "train", roles: {main: {}}}
  - name: register
    depends: [train]
    register_model:
      name: churn
      from: "{{steps.train.job_id}}"
      format: pytorch
      metrics: {loss: "0.5"}
  - name: announce
    depends: [register]
    job: {framework: batch, command: "echo version {{steps.register.outputs.parameters.version}}", roles: {main: {}}}
"""


def test_a_register_model_step_registers_the_jobs_folder_without_a_job(owner, drive):
    from serving.models import ModelVersion

    run = services.run_submit(user=owner, pipeline=save(owner, REGISTER).pipeline)
    drive.tick()
    [train] = jobs_of(run, "train")
    drive.end(train, files={"model_dir/model.pt": "weights"})
    drive.tick()
    version = ModelVersion.objects.get(model__name="churn")
    assert (version.number, version.metrics, version.source_job_id) == (1, {"loss": 0.5}, train.pk)
    assert jobs_of(run, "register") == []
    assert step_of(run, "register").message == "registered churn version 1"
    [announce] = jobs_of(run, "announce")
    assert announce.spec["command"][-1] == "echo version 1"


def test_a_register_model_step_that_the_registry_refuses_fails_with_its_reason(owner, drive):
    from serving.models import ModelVersion

    run = services.run_submit(user=owner, pipeline=save(owner, REGISTER).pipeline)
    drive.tick()
    drive.end(jobs_of(run, "train")[0], files={"model_dir/notes.txt": "no weights"})  # no .pt file
    drive.tick()
    step = step_of(run, "register")
    assert step.state == StepState.FAILED and step.message.startswith("not registered:")
    assert not ModelVersion.objects.exists()
    run.refresh_from_db()
    assert run.state == RunState.FAILED and states(run)["announce"] == "skipped"


def test_a_tick_asked_for_while_one_runs_is_not_lost(owner, drive):
    from django.core.cache import cache

    from pipelines import schedule, tasks

    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    [pretrain] = jobs_of(run, "pretrain")
    real = engine.advance
    rounds = []

    def advance_while_a_job_ends():
        rounds.append(real())
        if len(rounds) == 1:  # while the first round runs, the job ends and a sync pass asks for a tick
            drive.end(pretrain, files={"model_dir/loss.txt": "1"})
            assert schedule.enqueue_advance() is False  # one is running: it is asked to go round again
        return rounds[-1]

    engine.advance = advance_while_a_job_ends
    try:
        cache.add(schedule.ADVANCE_KEY, 1)
        tasks.advance()
    finally:
        engine.advance = real
    assert len(rounds) == 2
    assert states(run) == {"pretrain": "success", "finetune": "running"}
    assert cache.get(schedule.ADVANCE_KEY) is None  # the lease is given back
