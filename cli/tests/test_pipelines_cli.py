"""`easyai pipeline` against a real portal (the project's ASGI server: HTTP and the log socket).

Steps run on the fake backend's cluster: the test ends their jobs and ticks the engine as the sync pass and the
clock would (testing/pipelines.py's Driver), between CLI calls, so every state the CLI reads was reached
deterministically.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from easyai_cli import config as cli_config
from easyai_cli.main import main

from conftest import token_key_for
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, RunState, Schedule
from testing.pipelines import Driver, jobs_of, states

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHAIN = """\
name: chain
params:
  lr: 0.1
  epochs: {type: int, default: 1}
steps:
  - name: pretrain
    outputs:
      parameters: {loss: model_dir/loss.txt}
    job:
      framework: batch
      command: "echo pretrain {{params.lr}} {{params.epochs}}"
      roles: {main: {}}
  - name: finetune
    depends: [pretrain]
    job:
      framework: batch
      pre_job: "{{steps.pretrain.job_id}}"
      command: "echo finetune {{steps.pretrain.outputs.parameters.loss}}"
      roles: {main: {}}
"""

FAN = """\
name: fan
steps:
  - name: shard
    foreach: [a, b, c]
    job: {framework: batch, command: "echo {{item}}", roles: {main: {}}}
"""


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self):
        return json.loads(self.out)


def run(*argv: str, stdin: bytes = b"") -> Result:
    """main(argv) in this process, with its own stdin/stdout/stderr; argparse's usage errors come back as 2."""
    streams = [io.TextIOWrapper(io.BytesIO(data), encoding="utf-8") for data in (stdin, b"", b"")]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams[1:])
    return Result(code, out, err)


@pytest.fixture
def portal(owner, asgi_server, tmp_path, fake_backend, monkeypatch) -> str:
    """The owner's token in the CLI's config, pointing at the ASGI server; the default cluster is the fake one."""
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    monkeypatch.setenv("EASYAI_URL", asgi_server.http_url)
    cache.clear()
    cli_config.save(cli_config.Config(url=asgi_server.http_url, token=token_key_for(owner), username="owner"))
    return asgi_server.http_url


@pytest.fixture
def drive(fake_backend) -> Driver:
    return Driver(fake_backend)


def spec_file(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def rows_of(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_submit_saves_the_spec_and_starts_a_run_with_its_params(portal, tmp_path, drive):
    result = run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN), "-p", "lr=0.5", "-p", "epochs=3")

    assert result.code == 0, result
    pipeline = Pipeline.objects.get()
    run_row = PipelineRun.objects.get()
    assert run_row.params == {"lr": 0.5, "epochs": 3}
    assert PipelineVersion.objects.get().source == CHAIN
    assert result.out.splitlines() == [
        f"pipeline vision/chain (id {pipeline.pk}) saved as version 1",
        f"run {run_row.public_id} started: {portal}/pipelines/runs/{run_row.public_id}/",
        f"  follow it: easyai pipeline get {run_row.public_id}",
    ]
    # Again with --no-run: version 2, no run; -q prints only the id.
    again = run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN), "--no-run", "-q")
    assert again.code == 0 and again.out == f"{pipeline.pk}\n"
    assert PipelineVersion.objects.count() == 2 and PipelineRun.objects.count() == 1


def test_a_bad_spec_or_param_prints_each_problem_and_records_nothing(portal, tmp_path):
    cycle = CHAIN.replace("depends: [pretrain]", "depends: [finetune]")
    result = run("pipeline", "submit", "-f", spec_file(tmp_path, cycle))
    assert result.code == 1 and "steps.1.depends: " in result.err and "cycle" in result.err
    assert not Pipeline.objects.exists()

    bad = run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN), "-p", "epochs=many")
    assert bad.code == 1 and bad.err.startswith("params.epochs: "), bad
    assert PipelineRun.objects.count() == 0  # the version was saved; the run was refused

    for argv in (
        ("pipeline", "submit", "-f", str(tmp_path / "missing.yaml")),
        ("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN), "-p", "lr"),
        ("pipeline", "rerun", "r-00000000"),
        ("pipeline",),
        ("pipeline", "schedule"),
    ):
        assert run(*argv).code == 2, argv


def test_list_runs_and_get_show_the_steps(portal, owner, tmp_path, drive):
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN)).code == 0
    run_row = PipelineRun.objects.get()
    drive.tick()
    [pretrain] = jobs_of(run_row, "pretrain")
    drive.end(pretrain, files={"model_dir/loss.txt": "0.25"})
    drive.tick()
    [finetune] = jobs_of(run_row, "finetune")

    listed = run("pipeline", "list")
    pipeline = Pipeline.objects.get()
    assert rows_of(listed.out)[0] == ["ID", "TEAM/NAME", "VERSION", "OWNER", "UPDATED", "DESCRIPTION"]
    assert rows_of(listed.out)[1][:4] == [str(pipeline.pk), "vision/chain", "1", "owner"]

    for ref in ("chain", "vision/chain", str(pipeline.pk)):
        runs = run("pipeline", "runs", ref)
        assert runs.code == 0, runs
        assert [row[:3] for row in rows_of(runs.out)[1:]] == [[run_row.public_id, "running", "1"]]
    assert run("pipeline", "runs", "nope").code == 1
    assert run("pipeline", "runs", "chain", "--state", "success").err.startswith("No runs")

    got = run("pipeline", "get", run_row.public_id)
    assert got.code == 0, got
    fields = dict(
        (label, value.strip())
        for label, value in (line.split(":", 1) for line in got.out.split("\n\n")[0].splitlines())
    )
    assert fields["Run"] == run_row.public_id and fields["State"] == "running"
    assert fields["Params"] == "lr=0.1, epochs=1"
    assert fields["URL"] == f"{portal}/pipelines/runs/{run_row.public_id}/"
    steps = rows_of(got.out.split("\n\n", 1)[1])
    assert steps[0][:3] == ["STEP", "STATE", "JOB"]
    assert steps[1][:3] == ["pretrain", "success", pretrain.public_id]
    assert steps[2][:3] == ["finetune", "running", finetune.public_id]
    as_json = run("pipeline", "get", run_row.public_id, "-o", "json").json()
    assert as_json["steps"][0]["outputs"]["parameters"]["loss"] == "0.25"
    missing = run("pipeline", "get", "r-00000000")
    assert missing.code == 1 and "run r-00000000: not found" in missing.err


def test_stop_retry_and_rerun(portal, owner, mate, tmp_path, drive):
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN)).code == 0
    first = PipelineRun.objects.get()
    drive.tick()
    drive.end(jobs_of(first, "pretrain")[0], "failed", exit_code=1)
    drive.tick()
    assert states(first) == {"pretrain": "failed", "finetune": "skipped"}

    retried = run("pipeline", "retry", first.public_id, "pretrain")
    assert retried.code == 0, retried
    assert retried.out == f"run {first.public_id}: step pretrain runs again (run running)\n"
    nope = run("pipeline", "retry", first.public_id, "nothing")
    assert nope.code == 1 and nope.err == "step: No step 'nothing' in this run.\n"
    drive.tick()
    drive.end(jobs_of(first, "pretrain")[1], files={"model_dir/loss.txt": "0.3"})
    drive.tick()
    drive.end(jobs_of(first, "finetune")[0], "failed", exit_code=2)
    drive.tick()

    rerun = run("pipeline", "rerun", first.public_id, "--from", "finetune", "-q")
    assert rerun.code == 0, rerun
    second = PipelineRun.objects.get(public_id=rerun.out.strip())
    assert second.rerun_of_id == first.pk and states(second)["pretrain"] == "cached"

    stopped = run("pipeline", "stop", second.public_id)
    assert stopped.code == 0, stopped
    drive.tick()
    second.refresh_from_db()
    assert second.state == RunState.STOPPED
    again = run("pipeline", "stop", second.public_id)
    assert again.code == 1 and "has ended" in again.err


def test_a_team_mate_may_not_stop_the_owners_run(portal, owner, mate, tmp_path, drive):
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN)).code == 0
    run_row = PipelineRun.objects.get()
    cli_config.save(cli_config.Config(url=portal, token=token_key_for(mate), username="mate"))
    refused = run("pipeline", "stop", run_row.public_id)
    assert refused.code == 1 and "owner or a team admin" in refused.err
    assert not PipelineRun.objects.get(pk=run_row.pk).stop_requested
    # But sees it and may run the pipeline.
    assert run("pipeline", "get", run_row.public_id).code == 0
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN)).code == 1  # a new version: the owner's
    assert run("pipeline", "runs", "chain").code == 0


def test_logs_print_the_steps_latest_job_and_follow_it(portal, tmp_path, drive, fake_backend):
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, FAN)).code == 0
    run_row = PipelineRun.objects.get()
    drive.tick()
    jobs = jobs_of(run_row, "shard")
    assert len(jobs) == 3
    for index, job in enumerate(jobs):
        fake_backend.logs[(job.public_id, "main-0")] = f"item {index}\nline two\n".encode()
    one = run("pipeline", "logs", run_row.public_id, "shard", "--item", "1")
    assert one.code == 0, one
    assert one.out == "item 1\nline two\n"
    last = run("pipeline", "logs", run_row.public_id, "shard", "--tail", "1")
    assert last.out == "line two\n" and "item 2 shown" in last.err
    for job in jobs:
        drive.end(job)
    drive.tick()
    followed = run("pipeline", "logs", run_row.public_id, "shard", "--item", "0", "-f")
    assert followed.code == 0, followed
    assert followed.out == "item 0\nline two\n" and followed.err == "[main-0 succeeded, exit code 0]\n"
    assert run("pipeline", "logs", run_row.public_id, "shard", "--item", "7").code == 1
    assert "has no step 'nope'" in run("pipeline", "logs", run_row.public_id, "nope").err


def test_schedules_added_listed_paused_resumed_and_backfilled(portal, owner, tmp_path):
    assert run("pipeline", "submit", "-f", spec_file(tmp_path, CHAIN), "--no-run").code == 0
    added = run(
        "pipeline", "schedule", "add", "chain", "--name", "nightly", "--cron", "0 3 * * *",
        "--timezone", "Asia/Shanghai", "-p", "lr=0.2", "--concurrency", "forbid",
    )  # fmt: skip
    assert added.code == 0, added
    schedule = Schedule.objects.get()
    assert (schedule.timezone, schedule.params, schedule.concurrency) == ("Asia/Shanghai", {"lr": "0.2"}, "forbid")
    assert added.out.startswith(f"schedule {schedule.pk} (nightly, 0 3 * * * Asia/Shanghai): next ")

    listed = run("pipeline", "schedule", "list", "chain")
    assert rows_of(listed.out)[1][:2] == [str(schedule.pk), "nightly"]

    paused = run("pipeline", "schedule", "pause", str(schedule.pk))
    assert paused.code == 0 and paused.out.endswith(": paused\n") and Schedule.objects.get().paused
    assert run("pipeline", "schedule", "resume", str(schedule.pk)).code == 0
    assert not Schedule.objects.get().paused

    filled = run(
        "pipeline", "schedule", "backfill", str(schedule.pk), "--start", "2026-01-01T00:00Z", "--end", "2026-01-02T23:59Z"
    )  # fmt: skip
    assert filled.code == 0, filled
    assert filled.out.startswith("2 runs made")
    assert PipelineRun.objects.filter(schedule=schedule).count() == 2
    bad = run("pipeline", "schedule", "add", "chain", "--name", "x", "--cron", "sometimes")
    assert bad.code == 1 and bad.err.startswith("cron: ")
    assert Schedule.objects.count() == 1
    assert run("pipeline", "schedule", "pause", "99999").code == 1
