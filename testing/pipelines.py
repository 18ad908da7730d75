"""Pipelines' test support, for pipelines' tests and the CLI's: save a spec, end a step's job on the fake backend
(its output files written as its task would), run engine ticks. The ``drive`` fixture is loaded by the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from jobs.models import Job
from jobs.workers import sync as job_sync
from jobs.workers.submit import job_submit_to_backend
from pipelines import engine, services
from pipelines.models import PipelineRun, RunStep, StepJob

# A two-step chain: pretrain writes its loss, finetune reads it and names pretrain as its pre_job.
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


def save(user, text: str):
    return services.pipeline_save(user=user, data=text, source=text)


def step_of(run: PipelineRun, name: str) -> RunStep:
    return RunStep.objects.get(run=run, name=name)


def jobs_of(run: PipelineRun, name: str) -> list[Job]:
    return [
        row.job
        for row in StepJob.objects.filter(step__run=run, step__name=name)
        .select_related("job")
        .order_by("item", "attempt")
    ]


def states(run: PipelineRun) -> dict[str, str]:
    return dict(RunStep.objects.filter(run=run).values_list("name", "state"))


def write(job: Job, files: dict[str, str]) -> None:
    """Files the job's task wrote, under its folders (``model_dir/x``), and its log (``log:`` keys by task)."""
    root = Path(settings.EASYAI_STORAGE_ROOT)
    for relative, text in files.items():
        if relative.startswith("log:"):
            path = storage.task_log_path(root, job.public_id, relative[4:])
        else:
            path = root / job.public_id / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class Driver:
    """Ends jobs on the fake backend and ticks the engine, as the sync pass and the clock would."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def end(self, job: Job, state: str = "succeeded", files: dict[str, str] | None = None, exit_code: int = 0) -> None:
        if files:
            write(job, files)
        self.backend.set_state(job.public_id, state, exit_code=exit_code if state != "running" else None)
        job_sync.cluster_sync(self.backend.cluster)

    def tick(self, times: int = 1):
        """Engine ticks; the jobs they started are handed to the backend, as the submit worker does after the
        commit (a test's transaction never commits)."""
        result = None
        for _ in range(times):
            result = engine.advance()
            for pk in Job.objects.filter(state="queued").values_list("pk", flat=True):
                job_submit_to_backend(pk)
        return result


@pytest.fixture
def drive(fake_backend) -> Driver:
    return Driver(fake_backend)
