"""The easyai CLI against a real portal: pytest-django's live server over HTTP, the ASGI server for websockets.

Jobs run for real on a local cluster (tasks are processes). The submit worker
runs inline in the server's thread once the submit commits (django-q2 is
synchronous in tests); the sync worker is driven from the test (``settle``),
between CLI calls, so every state the CLI reads was reached deterministically.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import termios
import time
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.cache import cache
from easyai_cli import __version__ as cli_version
from easyai_cli import config as cli_config
from easyai_cli.main import main

from clusters.backends.contract import storage
from clusters.models import Cluster
from conftest import token_key_for
from jobs import tasks as job_tasks
from jobs.models import Job
from jobs.state import FINAL
from teams.models import ApiToken, Membership
from teams.tokens import digest_of, user_for_key

CLI_DIR = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-pass-123"  # the root conftest's

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# --- running the CLI -----------------------------------------------------------------------------


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self):
        return json.loads(self.out)


def run(*argv: str, stdin: bytes = b"") -> Result:
    """main(argv) in this process, with its own stdin/stdout/stderr (none of them a terminal)."""
    streams = [io.TextIOWrapper(io.BytesIO(data), encoding="utf-8") for data in (stdin, b"", b"")]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams[1:])
    return Result(code, out, err)


def run_process(*argv: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """The CLI as a real command: a fresh interpreter, configured only by its environment."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLI_DIR), os.environ.get("PYTHONPATH")]))
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "easyai_cli.main", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


# --- the portal ----------------------------------------------------------------------------------


@pytest.fixture
def cluster(db) -> Cluster:
    """The embedded local cluster; every job it ran is deleted (its processes killed) afterwards."""
    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "8Gi", "stop_grace": 1}
    )
    yield cluster
    backend = cluster.backend()
    for job_id in Job.objects.values_list("public_id", flat=True):
        backend.delete(job_id)


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "easyai-config"
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(directory))
    # Sign-ins are throttled per address and user name; earlier tests' exchanges must not count against these.
    cache.clear()
    return directory


@pytest.fixture
def portal_url(live_server, config_dir, monkeypatch) -> str:
    monkeypatch.setenv("EASYAI_URL", live_server.url)
    return live_server.url


@pytest.fixture
def logged_in(owner, portal_url, cluster) -> str:
    """The owner's token in the CLI's config, as `easyai login` leaves it."""
    key = token_key_for(owner)
    cli_config.save(cli_config.Config(url=portal_url, token=key, username="owner"))
    return key


def settle(job_id: str, states=FINAL, timeout: float = 30) -> Job:
    """Run the sync worker until the job reaches one of the states, as the scheduler would every few seconds."""
    cluster = Job.objects.get(public_id=job_id).cluster
    deadline = time.monotonic() + timeout
    while True:
        job_tasks.sync_cluster(cluster.pk)
        job = Job.objects.get(public_id=job_id)
        if job.state in states:
            return job
        assert time.monotonic() < deadline, f"{job_id} still {job.state} ({job.reason}: {job.message})"
        time.sleep(0.1)


def write_spec(tmp_path: Path, doc: dict | str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


BATCH_JOB = """\
# Two workers, each writing into the job's model_dir (one file at the top, one in a folder).
name: cli-demo
framework: batch
command: |
  echo "hello from $EASYAI_ROLE-$EASYAI_ROLE_INDEX"
  mkdir -p "$model_dir/ckpt"
  printf 'weights %s' "$EASYAI_ROLE_INDEX" > "$model_dir/ckpt/part-$EASYAI_ROLE_INDEX.bin"
  echo done > "$model_dir/DONE-$EASYAI_ROLE_INDEX"
roles:
  worker:
    replicas: 2
    cpu: 500m
    memory: 256Mi
"""

LONG_JOB = {
    "name": "sleeper",
    "framework": "batch",
    "command": "sleep 120",
    "roles": {"worker": {"replicas": 1, "cpu": "500m", "memory": "128Mi"}},
}


# --- login and the one-line errors ---------------------------------------------------------------


def test_login_as_a_command_saves_the_token_for_the_owner_only(owner, portal_url, config_dir):
    result = run_process(
        "login",
        "--url",
        portal_url,
        "--username",
        "owner",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        env={"EASYAI_CONFIG_DIR": str(config_dir)},
    )

    assert result.code == 0, result
    assert f"Logged in to {portal_url} as owner; team: vision." in result.out
    path = config_dir / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = yaml.safe_load(path.read_text())
    assert saved == {"url": portal_url, "token": saved["token"], "username": "owner"}
    # The key it was shown, once: the portal keeps only its hash, and the key authenticates as the owner.
    assert saved["token"].startswith("eai_") and user_for_key(saved["token"]) == owner
    token = ApiToken.objects.get(user=owner)
    assert token.digest == digest_of(saved["token"]) and token.name == f"easyai login on {socket.gethostname()}"[:100]
    # Any later command finds the portal and the token in the config alone.
    whoami = run_process("whoami", "-o", "json", env={"EASYAI_CONFIG_DIR": str(config_dir)})
    assert whoami.code == 0, whoami
    assert whoami.json()["username"] == "owner" and whoami.json()["team"] == "vision"


def test_login_with_a_wrong_password_prints_the_portals_words(owner, portal_url, config_dir):
    result = run_process(
        "login",
        "--username",
        "owner",
        "--password-stdin",
        stdin="wrong\n",
        env={"EASYAI_CONFIG_DIR": str(config_dir), "EASYAI_URL": portal_url},
    )

    assert result.code == 1
    assert result.err == "login refused: Wrong username or password.\n"
    assert not (config_dir / "config.yaml").exists()


def test_a_config_folder_that_cannot_be_made_is_one_line_after_login(owner, portal_url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_process(
        "login",
        "--url",
        portal_url,
        "--username",
        "owner",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        env={"EASYAI_CONFIG_DIR": str(blocker / "easyai")},
    )
    assert result.code == 1, result
    assert result.err == f"cannot save the config in {blocker / 'easyai' / 'config.yaml'}: Not a directory\n"


def test_the_installed_easyai_command_runs_against_the_portal(owner, portal_url, config_dir):
    # The console script `pip install ./cli` puts beside this interpreter (make run installs it into .venv).
    command = Path(sysconfig.get_path("scripts")) / "easyai"
    assert command.is_file(), f"{command} is missing: install the CLI with `pip install -e ./cli`"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment.update(
        EASYAI_CONFIG_DIR=str(config_dir), EASYAI_URL=portal_url, EASYAI_TOKEN=token_key_for(owner)
    )

    version = subprocess.run([command, "--version"], capture_output=True, text=True, env=environment, timeout=60)
    whoami = subprocess.run(
        [command, "whoami", "-o", "json"], capture_output=True, text=True, env=environment, timeout=60
    )

    assert (version.returncode, version.stdout) == (0, f"easyai {cli_version}\n")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == "owner" and json.loads(whoami.stdout)["url"] == portal_url


def test_login_without_a_terminal_or_password_stdin_is_a_usage_error(owner, portal_url):
    result = run("login", "--username", "owner")
    assert result.code == 2
    assert "--password-stdin" in result.err


def test_without_a_token_every_command_says_how_to_log_in(portal_url, config_dir):
    for argv in (["list"], ["get", "j-00000000"], ["whoami"], ["submit", "-f", __file__]):
        result = run_process(*argv, env={"EASYAI_CONFIG_DIR": str(config_dir), "EASYAI_URL": portal_url})
        assert result.code == 1, (argv, result)
        assert result.err == "not logged in: run `easyai login` or set EASYAI_TOKEN\n", argv
        assert result.out == ""


def test_an_unreachable_portal_is_one_line_not_a_traceback(config_dir):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = run_process("list", env={"EASYAI_CONFIG_DIR": str(config_dir), "EASYAI_URL": url, "EASYAI_TOKEN": "x"})

    assert result.code == 1
    assert result.err.startswith(f"cannot reach the portal at {url}: ")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    login = run_process(
        "login",
        "--url",
        url,
        "--username",
        "u",
        "--password-stdin",
        stdin="p\n",
        env={"EASYAI_CONFIG_DIR": str(config_dir)},
    )
    assert login.code == 1 and login.err.startswith(f"cannot reach the portal at {url}: ")


def test_a_wrong_token_and_a_url_that_is_not_a_portal_are_explained(portal_url, live_server, monkeypatch):
    monkeypatch.setenv("EASYAI_TOKEN", "not-a-token")
    result = run("list")
    assert result.code == 1
    assert (
        result.err == "the portal refused the token (Invalid token.): run `easyai login` again or check EASYAI_TOKEN\n"
    )
    monkeypatch.setenv("EASYAI_URL", "localhost:8000")
    result = run("list")
    assert result.code == 1 and "is not a portal URL" in result.err


def test_a_bad_spec_prints_each_field_error_on_its_line_and_creates_nothing(logged_in, tmp_path):
    spec = write_spec(tmp_path, {"framework": "pytorch", "roles": {"worker": {"replicas": 0}}, "priority": "urgent"})

    result = run_process(
        "submit",
        "-f",
        str(spec),
        env={"EASYAI_CONFIG_DIR": os.environ["EASYAI_CONFIG_DIR"], "EASYAI_URL": os.environ["EASYAI_URL"]},
    )

    assert result.code == 1, result
    lines = result.err.splitlines()
    assert "name: required" in lines
    assert "roles.worker.replicas: must be at least 1" in lines
    assert "priority: must be one of low, normal, high" in lines
    assert all(": " in line for line in lines) and "Traceback" not in result.err
    assert result.out == ""
    assert not Job.objects.exists()


def test_usage_mistakes_exit_2(logged_in, tmp_path):
    assert run("submit").code == 2
    assert run("submit", "-f", str(tmp_path / "missing.yaml")).code == 2
    bad_env = run("submit", "batch", "--name", "x", "--env", "NOEQUALS", "true")
    assert bad_env.code == 2 and "--env 'NOEQUALS': write it as NAME=value" in bad_env.err
    with pytest.raises(SystemExit) as exit_info:
        run("submit", "pytorch", "--workers", "0", "--name", "x", "true")
    assert exit_info.value.code == 2
    assert not Job.objects.exists()


# --- the life of a job ---------------------------------------------------------------------------


def test_submit_yaml_then_list_get_logs_and_download_its_outputs(logged_in, tmp_path):
    spec = write_spec(tmp_path, BATCH_JOB)

    submitted = run("submit", "-f", str(spec), "-q")
    assert submitted.code == 0, submitted
    job_id = submitted.out.strip()
    job = settle(job_id)
    assert job.state == "success", (job.reason, job.message)
    assert job.team.slug == "vision" and job.owner.username == "owner"

    listed = run("list", "-o", "json")
    assert listed.code == 0
    assert [(j["id"], j["state"]) for j in listed.json()] == [(job_id, "success")]
    table = run("list").out.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "FRAMEWORK", "OWNER", "AGE", "DURATION"]
    assert table[1].split()[:5] == [job_id, "cli-demo", "success", "batch", "owner"]
    # Columns line up: every row's STATE starts where the header's does.
    assert table[1].index("success") == table[0].index("STATE")

    detail = run("get", job_id, "-o", "json").json()
    assert [(t["name"], t["state"], t["exit_code"]) for t in detail["tasks"]] == [
        ("worker-0", "succeeded", 0),
        ("worker-1", "succeeded", 0),
    ]
    assert [e["to_state"] for e in detail["events"]][-1] == "success"
    assert yaml.safe_load(run("get", "cli-demo", "-o", "yaml").out)["id"] == job_id  # by name, too
    shown = run("get", job_id).out
    assert f"ID:         {job_id}" in shown and "worker-1   succeeded" in shown and "Events:" in shown

    assert run("logs", job_id).out == "hello from worker-0\n"
    assert run("logs", job_id, "-t", "worker-1").out == "hello from worker-1\n"
    missing = run("logs", job_id, "-t", "chief-0")
    assert missing.code == 1 and "has no task 'chief-0'; its tasks: worker-0, worker-1" in missing.err

    out = tmp_path / "out"
    downloaded = run("download", job_id, "model_dir", "-o", str(out))
    assert downloaded.code == 0, downloaded
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "model_dir/DONE-0",
        "model_dir/DONE-1",
        "model_dir/ckpt/part-0.bin",
        "model_dir/ckpt/part-1.bin",
    ]
    assert (out / "model_dir/ckpt/part-1.bin").read_bytes() == b"weights 1"
    one = run("download", job_id, "model_dir", "ckpt/part-0.bin", "-o", str(tmp_path / "one"))
    assert one.code == 0 and (tmp_path / "one/part-0.bin").read_bytes() == b"weights 0"
    archive = run("download", job_id, "model_dir", "ckpt", "--zip", "-o", str(tmp_path / "zip"))
    assert archive.code == 0 and (tmp_path / "zip" / f"{job_id}-model_dir-ckpt.zip").stat().st_size > 0
    outputs = run("download", job_id, "--format", "json").json()["outputs"]
    assert {o["path"]: o["exists"] for o in outputs}["model_dir"] is True

    # A local folder that cannot be made (under a regular file: that stops root too) or a file that cannot be
    # written is one line naming the path, and exit 1.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for argv, folder in [
        (("model_dir",), blocker / "out" / "model_dir"),
        (("model_dir", "ckpt/part-0.bin"), blocker / "out"),
        (("model_dir", "ckpt", "--zip"), blocker / "out"),
    ]:
        refused = run("download", job_id, *argv, "-o", str(blocker / "out"))
        assert (refused.code, refused.err) == (1, f"cannot create the folder {folder}: Not a directory\n"), argv
    (tmp_path / "taken" / "part-0.bin").mkdir(parents=True)
    refused = run("download", job_id, "model_dir", "ckpt/part-0.bin", "-o", str(tmp_path / "taken"))
    assert (refused.code, refused.err) == (1, f"cannot save {tmp_path / 'taken' / 'part-0.bin'}: Is a directory\n")
    assert os.listdir(tmp_path / "taken") == ["part-0.bin"]  # no partial download left beside it


def test_dry_run_validates_and_submits_nothing(logged_in, tmp_path):
    result = run("submit", "-f", str(write_spec(tmp_path, BATCH_JOB)), "--dry-run")
    assert result.code == 0, result
    assert result.out.startswith("The spec is valid. cli-demo would run 2 task(s) in team vision")
    as_json = run("submit", "-f", str(write_spec(tmp_path, BATCH_JOB)), "--dry-run", "-o", "json").json()
    assert [t["name"] for t in as_json["description"]["tasks"]] == ["worker-0", "worker-1"]
    assert not Job.objects.exists()


def test_stop_rerun_and_delete(logged_in, tmp_path):
    job_id = run("submit", "-f", str(write_spec(tmp_path, LONG_JOB)), "-q").out.strip()
    settle(job_id, states={"running"})

    stopped = run("stop", job_id)
    assert stopped.code == 0, stopped
    assert stopped.out == f"job {job_id} stopped (state: stopped)\n"
    assert Job.objects.get(public_id=job_id).state == "stopped"
    again = run("stop", job_id)
    assert again.code == 1 and again.err.strip() and "Traceback" not in again.err

    rerun = run("rerun", job_id, "-o", "json")
    assert rerun.code == 0, rerun
    new_id = rerun.json()["id"]
    assert new_id != job_id and rerun.json()["rerun_of"] == job_id
    assert settle(new_id, states={"running"}).spec["command"] == ["/bin/sh", "-c", "sleep 120"]

    deleted = run("delete", new_id)
    assert deleted.code == 0 and deleted.out == f"job {new_id} deleted\n"
    new_job = Job.objects.get(public_id=new_id)
    assert new_job.deleted and new_job.state == "stopped"
    assert [j["id"] for j in run("list", "-o", "json").json()] == [job_id]
    gone = run("get", new_id)
    assert gone.code == 1 and gone.err == f"job {new_id}: not found (or you may not see it)\n"


def test_arena_style_pytorch_submit_maps_workers_to_a_master_and_workers(logged_in, tmp_path):
    script = "import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['GREETING'])"
    dry = run(
        "submit",
        "pytorch",
        "--name",
        "ddp",
        "--workers",
        "3",
        "--cpu",
        "500m",
        "--memory",
        "128Mi",
        "--env",
        "GREETING=hi",
        "--dry-run",
        "-o",
        "json",
        "--",
        sys.executable,
        "-c",
        f'"{script}"',
    )
    assert dry.code == 0, dry
    roles = dry.json()["spec"]["roles"]
    assert {name: role["replicas"] for name, role in roles.items()} == {"master": 1, "worker": 2}
    assert roles["worker"]["cpu"] == "500m" and roles["worker"]["memory"] == "128Mi"
    assert not Job.objects.exists()

    submitted = run(
        "submit",
        "pytorch",
        "--name",
        "ddp",
        "--workers",
        "3",
        "--cpu",
        "500m",
        "--memory",
        "128Mi",
        "--env",
        "GREETING=hi",
        "--experiment",
        "baseline",
        "--priority",
        "high",
        "--",
        sys.executable,
        "-c",
        f'"{script}"',
    )
    assert submitted.code == 0, submitted
    job_id = submitted.out.split()[1]
    assert submitted.out.startswith(
        f"job {job_id} (ddp) submitted to team vision on local: master-0, worker-0, worker-1"
    )
    job = settle(job_id)
    assert job.state == "success" and job.experiment.name == "baseline" and job.priority == "high"
    assert run("logs", job_id).out == "0 3 hi\n"
    assert run("logs", job_id, "-t", "worker-1").out == "2 3 hi\n"


def test_team_use_scopes_list_and_submit_and_all_teams_sees_both(owner, other_team, logged_in, tmp_path):
    Membership.objects.create(team=other_team, user=owner, role=Membership.Role.MEMBER)
    assert run("team", "use", "vision").code == 0
    first = run("submit", "-f", str(write_spec(tmp_path, LONG_JOB)), "-q").out.strip()
    assert run("team", "use", "nope").code == 1

    used = run("team", "use", "speech")
    assert used.code == 0 and used.out == "Now working in team speech (Speech).\n"
    second = run("submit", "-f", str(write_spec(tmp_path, json.dumps(LONG_JOB), "job.json")), "-q").out.strip()

    assert Job.objects.get(public_id=first).team.slug == "vision"
    assert Job.objects.get(public_id=second).team.slug == "speech"
    assert [j["id"] for j in run("list", "-o", "json").json()] == [second]
    assert {j["id"]: j["team"] for j in run("list", "-A", "-o", "json").json()} == {first: "vision", second: "speech"}
    assert "TEAM" in run("list", "-A").out.splitlines()[0]
    teams = run("team", "list").out.splitlines()
    assert teams[0].split() == ["CURRENT", "SLUG", "NAME", "ROLE", "MEMBERS"]
    assert sorted(line.split()[:2] for line in teams[1:]) == [["*", "speech"], ["vision", "Vision"]]
    assert run("whoami", "-o", "json").json()["team"] == "speech"


def test_upload_a_file_and_a_folder_into_the_personal_workspace(logged_in, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n1,2\n" * 1000)
    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "1.png").write_bytes(bytes(range(256)))

    assert run("upload", str(data)).code == 0
    assert run("upload", str(data), "datasets/").code == 0
    result = run("upload", str(folder), "datasets", "--format", "json")
    assert result.code == 0, result

    workspace = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), "owner")
    assert (workspace / "data.csv").read_bytes() == data.read_bytes()
    assert (workspace / "datasets/data.csv").read_bytes() == data.read_bytes()
    assert (workspace / "datasets/images/cats/1.png").read_bytes() == bytes(range(256))
    assert [entry["path"] for entry in result.json()] == ["datasets/images/cats/1.png"]


# --- websockets: logs -f and exec ----------------------------------------------------------------


@pytest.fixture
def ws_portal(asgi_server, owner, cluster, config_dir, monkeypatch) -> dict[str, str]:
    """The CLI's environment for a portal that also serves websockets."""
    key = token_key_for(owner)
    monkeypatch.setenv("EASYAI_URL", asgi_server.http_url)
    monkeypatch.setenv("EASYAI_TOKEN", key)
    return {"EASYAI_CONFIG_DIR": str(config_dir), "EASYAI_URL": asgi_server.http_url, "EASYAI_TOKEN": key}


def test_logs_follow_streams_until_the_task_ends_then_exits_0(ws_portal, tmp_path):
    spec = dict(LONG_JOB, name="counter", command='for i in 1 2 3 4 5; do echo "line $i"; sleep 0.2; done; exit 4')
    job_id = run("submit", "-f", str(write_spec(tmp_path, spec)), "-q").out.strip()

    followed = run_process("logs", job_id, "-f", env=ws_portal)

    assert followed.code == 0, followed
    assert followed.out == "".join(f"line {i}\n" for i in range(1, 6))
    assert followed.err == "[worker-0 failed, exit code 4]\n"
    assert settle(job_id).state == "failed"
    tail = run_process("logs", job_id, "-f", "--tail", "2", env=ws_portal)
    assert tail.code == 0 and tail.out == "line 4\nline 5\n"
    assert run("logs", job_id, "--tail", "1").out == "line 5\n"


def test_exec_runs_a_command_in_the_running_task_and_exits_with_its_code(ws_portal, tmp_path):
    job_id = run("submit", "-f", str(write_spec(tmp_path, dict(LONG_JOB, env={"COLOR": "blue"}))), "-q").out.strip()
    settle(job_id, states={"running"})

    result = run_process("exec", job_id, "--", "echo color=$COLOR; sh -c 'exit 7'", env=ws_portal)

    assert result.code == 7, result
    assert result.out == "color=blue\n"
    # A piped script keeps its tabs and long lines (a terminal would complete the one and cut the other).
    script = "echo piped-$COLOR\nprintf 'tab[%s]\\n' '\t'\necho " + "a" * 6000 + " | wc -c\nexit 3\n"
    piped = run_process("exec", job_id, stdin=script, env=ws_portal)
    assert piped.code == 3, piped
    assert piped.out == "piped-blue\ntab[\t]\n6001\n"

    run("stop", job_id)
    refused = run_process("exec", job_id, "--", "true", env=ws_portal)
    assert refused.code == 1 and "a shell opens only in a running task" in refused.err


def test_exec_on_a_terminal_is_interactive_and_passes_window_sizes_on(ws_portal, tmp_path):
    job_id = run("submit", "-f", str(write_spec(tmp_path, dict(LONG_JOB, env={"COLOR": "blue"}))), "-q").out.strip()
    settle(job_id, states={"running"})
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment.update(ws_portal, PYTHONPATH=str(CLI_DIR))
    process = subprocess.Popen(
        [sys.executable, "-m", "easyai_cli.main", "exec", job_id],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""

    def read_until(*texts: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not any(text in seen for text in texts):
            assert time.monotonic() < deadline, f"never saw {texts!r} in {seen[-500:]!r}"
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the CLI closed its end
                    break

    try:
        # The task's shell prompt (its user's: root's "# " unsandboxed, the sandbox user's "$ "): it reads now.
        read_until(b"# ", b"$ ")
        os.write(master, b"echo tty-$COLOR\r")
        read_until(b"tty-blue")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        process.send_signal(signal.SIGWINCH)  # what the kernel sends a terminal's foreground process
        # The resize travels CLI -> socket -> task's PTY: ask until the task's terminal has it.
        for _ in range(40):
            os.write(master, b"stty size\r")
            try:
                read_until(b"33 101", timeout=0.5)
                break
            except AssertionError:
                continue
        read_until(b"33 101")
        os.write(master, b"exit 5\r")
        assert process.wait(timeout=20) == 5
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
