"""The portal's engine on the fake backend: outputs passed on, conditions, fan-out and fan-in, retries, reruns,
caching, stop, and starts that happen once however the ticks are delivered."""

from __future__ import annotations

from pipelines import services
from pipelines.models import RunState, StepState
from pipelines.tests.conftest import jobs_of, save, states, step_of

CHAIN = """
name: chain
params:
  lr: 0.1
steps:
  - name: pretrain
    outputs:
      parameters: {loss: model_dir/loss.txt}
    job:
      framework: batch
      command: "echo pretrain {{params.lr}}"
      roles: {main: {}}
  - name: finetune
    depends: [pretrain]
    job:
      framework: batch
      pre_job: "{{steps.pretrain.job_id}}"
      command: "echo finetune after loss {{steps.pretrain.outputs.parameters.loss}}"
      roles: {main: {}}
"""


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
