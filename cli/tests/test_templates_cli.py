"""`easyai submit --template NAME --set field=value` against a live portal."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.cache import cache
from easyai_cli import config as cli_config
from easyai_cli.main import main

from clusters.models import Cluster
from conftest import token_key_for
from jobs import templates
from jobs.models import Job, JobTemplate


def run(*argv: str) -> tuple[int, str, str]:
    streams = [io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8") for _ in range(3)]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams[1:])
    return code, out, err


@pytest.fixture
def logged_in(owner, live_server, tmp_path, monkeypatch):
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    cache.clear()
    cli_config.save(cli_config.Config(url=live_server.url, token=token_key_for(owner), username="owner"))
    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "8Gi", "stop_grace": 1}
    )
    templates.load_platform_templates()
    yield owner
    for job_id in Job.objects.values_list("public_id", flat=True):
        cluster.backend().delete(job_id)


def test_submit_a_template_with_values(logged_in, team):
    code, out, err = run("submit", "--template", "batch", "--set", "workers=3", "--set", "epochs=2", "-o", "json")
    assert code == 0, err
    job = Job.objects.get()
    assert job.team == team and job.spec["roles"]["train"]["replicas"] == 3
    assert job.spec["roles"]["train"]["env"] == {"EPOCHS": "2"}


def test_the_teams_template_wins_over_the_platforms_of_the_same_name(logged_in, team):
    platform = JobTemplate.objects.get(name="batch", team=None)
    spec = {**platform.spec, "roles": {"only": {"replicas": "{{workers}}", "command": "true"}}}
    templates.template_create(user=logged_in, team=team, name="batch", spec=spec, fields={"workers": {"default": "1"}})
    code, out, err = run("submit", "--template", "batch", "--set", "workers=2", "--dry-run")
    assert code == 0, err
    assert "would run 2 task(s)" in out and "only-1" in out
    assert not Job.objects.exists()


def test_unknown_fields_and_templates_are_refused(logged_in):
    code, out, err = run("submit", "--template", "batch", "--set", "epoch=2")
    assert code == 1 and "no field epoch" in err
    code, out, err = run("submit", "--template", "nope")
    assert code == 1 and "no template 'nope'" in err
    code, out, err = run("submit", "--template", "batch", "--set", "epochs")
    assert code == 2 and "FIELD=VALUE" in err
    assert not Job.objects.exists()
