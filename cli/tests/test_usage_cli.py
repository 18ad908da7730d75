"""`easyai usage` and `easyai top` against a real portal (pytest-django's live server over HTTP)."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from easyai_cli import config as cli_config
from easyai_cli import usage as cli_usage
from easyai_cli.main import main

from clusters.models import Cluster
from conftest import token_key_for
from jobs import spec as job_spec
from jobs.models import Job, Task
from monitoring.models import JobUsage, UsageSample

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RANGE = ("--from", "2026-11-01", "--to", "2026-11-30")


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def run(*argv: str) -> Result:
    """main(argv) in this process with its own stdout and stderr; argparse's usage errors come back as code 2."""
    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2)]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    finally:
        for stream in streams:
            stream.flush()
        sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams)
    return Result(code, out, err)


def rows_of(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


@pytest.fixture
def logged_in(owner, live_server, tmp_path, monkeypatch) -> str:
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    cache.clear()
    key = token_key_for(owner)
    cli_config.save(cli_config.Config(url=live_server.url, token=key, username="owner"))
    return key


@pytest.fixture
def cluster(db) -> Cluster:
    return Cluster.objects.create(name="gpus", kind="local")


@pytest.fixture
def usage(owner, mate, outsider, team, other_team, cluster) -> dict[str, Job]:
    """Vision: the owner's job on Nov 2 (1.50 EUR) and the mate's on Nov 5 (20.25 EUR, GPUs); Speech: 99 EUR."""

    def add(user, job_team, day, cost, name, gpu=(0.0, 0.0)) -> Job:
        job = Job.objects.create(
            name=name, team=job_team, owner=user, cluster=cluster, framework="batch", spec={}, state="success"
        )
        JobUsage.objects.create(
            job=job, team=job_team, owner=user, cluster=cluster, day=day, running_seconds=7200,
            core_hours_requested=4, core_hours_used=1, gib_hours_requested=8, gib_hours_used=6,
            gpu_hours_requested=gpu[0], gpu_hours_used=gpu[1], cost=Decimal(cost), currency="EUR", closed=True,
        )  # fmt: skip
        return job

    return {
        "owner": add(owner, team, date(2026, 11, 2), "1.50", "train"),
        "mate": add(mate, team, date(2026, 11, 5), "20.25", "big-sweep", gpu=(2.0, 1.5)),
        "speech": add(outsider, other_team, date(2026, 11, 2), "99.00", "speech-secret"),
    }


def test_usage_by_user_prints_a_table_with_a_total(logged_in, usage):
    result = run("usage", *RANGE, "--group-by", "user")

    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0] == "Usage of team vision, 2026-11-01 to 2026-11-30, by user, cost in EUR"
    assert rows_of(result.out)[1][:2] == ["USER", "JOBS"]
    assert rows_of(result.out)[2:] == [
        ["mate", "1", "2.0", "1.0/4.0", "6.0/8.0", "1.5/2.0", "25%/75%/75%", "20.25"],
        ["owner", "1", "2.0", "1.0/4.0", "6.0/8.0", "0.0/0.0", "25%/75%/-", "1.50"],
        ["TOTAL", "2", "4.0", "2.0/8.0", "12.0/16.0", "1.5/2.0", "25%/75%/75%", "21.75"],
    ]


def test_usage_by_job_names_each_job(logged_in, usage):
    result = run("usage", *RANGE, "--group-by", "job")

    assert result.code == 0, result
    rows = rows_of(result.out)
    assert rows[1][:4] == ["JOB", "NAME", "OWNER", "STARTED"]
    assert [row[:4] + row[-1:] for row in rows[2:4]] == [
        [usage["mate"].public_id, "big-sweep", "mate", "2026-11-05", "20.25"],
        [usage["owner"].public_id, "train", "owner", "2026-11-02", "1.50"],
    ]
    assert rows[4][0] == "TOTAL" and rows[4][-1] == "21.75"


def test_usage_as_csv_and_json(logged_in, usage):
    as_csv = run("usage", *RANGE, "--group-by", "day", "-o", "csv")
    assert as_csv.code == 0, as_csv
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert [(row["day"], row["jobs"], row["cost"]) for row in rows] == [
        ("2026-11-02", "1", "1.5"),
        ("2026-11-05", "1", "20.25"),
    ]

    as_json = run("usage", *RANGE, "--group-by", "month", "-o", "json")
    body = json.loads(as_json.out)
    assert (body["team"], body["group_by"], body["currency"]) == ("vision", "month", "EUR")
    assert [(row["month"], row["cost"]) for row in body["rows"]] == [("2026-11", 21.75)]


def test_usage_of_another_team_is_refused_and_every_team_means_ones_own(logged_in, usage):
    refused = run("usage", "--team", "speech", *RANGE)
    assert refused.code == 1 and refused.err.strip() == "team speech: not found (or you are not in it)"

    mine = run("usage", "-A", *RANGE, "-o", "json")
    assert json.loads(mine.out)["totals"]["cost"] == 21.75  # every team the owner may see: vision alone


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--from", "2026-13-01"), "--from: '2026-13-01' is not a date (YYYY-MM-DD)."),
        (("--from", "2026-12-01", "--to", "2026-11-01"), "--from: 2026-12-01 is after 2026-11-30 (to)."),
    ],
)
def test_a_bad_date_is_a_usage_mistake_naming_the_option(logged_in, usage, argv, words):
    result = run("usage", *argv)

    assert result.code == 2, result
    assert result.err.strip() == words.replace("2026-11-30", argv[-1]) if "--to" in argv else words


def test_an_unknown_grouping_is_refused_before_asking(logged_in, usage):
    result = run("usage", "--group-by", "week")
    assert result.code == 2 and "invalid choice: 'week'" in result.err


# --- top ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def running(owner, team, cluster) -> Job:
    spec = job_spec.validate(
        {
            "name": "live", "framework": "batch", "image": "python:3.12", "command": "true",
            "roles": {"worker": {"replicas": 2, "cpu": "2", "memory": "4Gi", "gpu": 1}},
        }
    )  # fmt: skip
    started = timezone.now() - timedelta(minutes=10)
    job = Job.objects.create(
        name="live", team=team, owner=owner, cluster=cluster, framework="batch", spec=spec, state="running",
        started_at=started, cpu_milli=4000, memory_bytes=8 << 30, gpu=2,
    )  # fmt: skip
    for index in range(2):
        task = Task.objects.create(
            job=job, role="worker", index=index, state="running", node="node-a", gpu_ids=[str(index)],
            started_at=started,
        )  # fmt: skip
        if index == 0:
            UsageSample.objects.create(
                task=task, job=job, at=timezone.now(), seconds=5, cpu_cores=1.5, memory_bytes=3 << 30, gpu_util=80,
                gpu_memory_bytes=10 << 30,
            )  # fmt: skip
    return job


def test_top_shows_running_tasks_with_live_use_against_request(logged_in, running):
    result = run("top")

    assert result.code == 0, result
    rows = rows_of(result.out)
    assert rows[0] == [
        "JOB", "TASK", "OWNER", "NODE", "CPU(USED/REQ)", "MEMORY(USED/REQ)", "GPUS", "GPU-IDS", "GPU-UTIL", "GPU-MEM",
        "AGE",
    ]  # fmt: skip
    assert rows[1:] == [
        [running.public_id, "worker-0", "owner", "node-a", "1.5/2", "3.0Gi/4.0Gi", "1", "0", "80%", "10.0Gi", "10m"],
        [running.public_id, "worker-1", "owner", "node-a", "-/2", "-/4.0Gi", "1", "1", "-", "-", "10m"],
    ]


def test_top_without_running_tasks_says_so(logged_in, usage):
    result = run("top")
    assert result.code == 0 and result.out.strip() == "no running tasks in team vision"


def test_top_watch_shows_it_again_until_ctrl_c(logged_in, running, monkeypatch):
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_usage.time, "sleep", nap)
    result = run("top", "--watch", "3")

    assert result.code == 0, result
    assert naps == [3, 3]
    assert result.out.count("Every 3s: running tasks of team vision") == 2
    assert result.out.count(f"{running.public_id}   worker-1") == 2


def test_top_as_json(logged_in, running):
    body = json.loads(run("top", "-o", "json").out)
    assert body["team"] == "vision"
    assert [(task["task"], task["cpu_cores"], task["gpu_request"]) for task in body["tasks"]] == [
        ("worker-0", 1.5, 1),
        ("worker-1", None, 1),
    ]
