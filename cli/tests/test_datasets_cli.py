"""`easyai upload --to data`, `easyai download --from data` and `easyai dataset …` against a real portal
(pytest-django's live server over HTTP)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from easyai_cli import config as cli_config
from easyai_cli.main import main

from assets.models import Dataset, DatasetVersion
from conftest import token_key_for
from jobs.models import Job
from jobs.state import JobState


def run(*argv: str) -> tuple[int, str, str]:
    streams = [io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8") for _ in range(3)]
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
    return code, out, err


@pytest.fixture
def logged_in(owner, live_server, tmp_path, monkeypatch, fake_backend):
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    cache.clear()
    cli_config.save(cli_config.Config(url=live_server.url, token=token_key_for(owner), username="owner"))


def test_data_round_trip_then_datasets_from_data_and_an_upload(logged_in, tmp_path, owner, team, fake_backend):
    local = tmp_path / "mnist"
    (local / "labels").mkdir(parents=True)
    (local / "train.csv").write_bytes(b"x,y\n1,2\n")
    (local / "labels" / "l.txt").write_bytes(b"7\n")
    code, _out, err = run("upload", str(local), "--to", "data")
    assert code == 0, err
    data = Path(settings.EASYAI_STORAGE_ROOT) / "data" / "owner" / "mnist"
    assert (data / "train.csv").read_bytes() == b"x,y\n1,2\n" and (data / "labels" / "l.txt").read_bytes() == b"7\n"

    back = tmp_path / "back"
    code, _out, err = run("download", "--from", "data", "mnist", "-o", str(back))
    assert code == 0, err
    assert (back / "mnist" / "labels" / "l.txt").read_bytes() == b"7\n"

    code, out, err = run("dataset", "create", "mnist", "--from", "data:mnist", "-o", "json")
    assert code == 0, err
    made = json.loads(out)
    assert made["ref"] == "mnist@1" and made["file_count"] == 2 and made["source_ref"] == "data:mnist"
    code, out, err = run("dataset", "create", "mnist", "--upload", str(local), "-o", "json")
    assert code == 0, err
    # The same files, uploaded as a zip: the same digest.
    assert json.loads(out)["ref"] == "mnist@2" and json.loads(out)["digest"] == made["digest"]

    code, out, _err = run("dataset", "list")
    assert code == 0 and "mnist@2" in out
    code, out, _err = run("dataset", "get", "mnist")
    assert code == 0 and "mnist@1" in out and "mnist@2" in out

    Job.objects.create(
        name="train", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch",
        spec={"datasets": ["mnist@1"]}, state=JobState.RUNNING,
    )  # fmt: skip
    code, _out, err = run("dataset", "delete", "mnist@1")
    assert code == 1 and "in use" in err
    code, _out, err = run("dataset", "delete", "mnist@2")
    assert code == 0, err
    assert list(DatasetVersion.objects.values_list("version", flat=True)) == [1]
    code, _out, err = run("dataset", "create", "other", "--from", "mnist")
    assert code == 2 and "data:PATH" in err
    assert Dataset.objects.count() == 1
