"""`easyai get` shows a held job's hold and services, and `easyai release` ends the hold: the real `easyai`
process against a live portal, the cluster's part played by the fake backend."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from clusters.backends.base import ObservedState
from conftest import token_key_for
from jobs import services, tasks
from jobs.models import Job
from jobs.state import HOLD_RELEASED, JobState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLI_DIR = Path(__file__).resolve().parents[2] / "cli"


def easyai(*argv: str, user, url: str, config: Path) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLI_DIR), os.environ.get("PYTHONPATH")]))
    environment.update(EASYAI_URL=url, EASYAI_TOKEN=token_key_for(user), EASYAI_CONFIG_DIR=str(config))
    return subprocess.run(
        [sys.executable, "-m", "easyai_cli.main", *argv], capture_output=True, text=True, env=environment, timeout=60
    )


def test_get_shows_the_hold_and_release_ends_it(owner, mate, fake_backend, live_server, tmp_path):
    spec = {
        "name": "resnet",
        "framework": "pytorch",
        "command": "python train.py",
        "roles": {"master": {"services": [{"name": "board", "command": "tensorboard", "port": 6006}]}},
        "debug": {"pause_on_failure": "30m"},
    }
    job = services.job_submit(user=owner, data=spec)
    until = timezone.now() + timedelta(minutes=30)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, held="pause_on_failure", held_until=until, exit_code=1)
    tasks.sync_cluster(fake_backend.cluster.pk)
    run = {"url": live_server.url, "config": tmp_path / "config"}

    shown = easyai("get", job.public_id, user=owner, **run)
    assert shown.returncode == 0, shown.stderr
    assert "failed, held for debugging" in shown.stdout
    assert "pause_on_failure until" in shown.stdout and f"easyai release {job.public_id}" in shown.stdout
    assert "Services:" in shown.stdout and "board" in shown.stdout and "6006" in shown.stdout

    refused = easyai("release", job.public_id, user=mate, **run)
    assert refused.returncode == 1 and refused.stdout == ""
    assert Job.objects.get(pk=job.pk).held_until is not None

    released = easyai("release", job.public_id, user=owner, **run)
    assert released.returncode == 0, released.stderr
    assert f"job {job.public_id}: the hold was released" in released.stdout
    job.refresh_from_db()
    assert job.held_until is None and job.events.get(reason=HOLD_RELEASED).actor == owner
    assert ("release_hold", job.public_id) in fake_backend.calls
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED

    again = easyai("release", job.public_id, user=owner, **run)
    assert again.returncode == 1 and "Nothing of this job is held" in again.stderr
