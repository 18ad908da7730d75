"""SSH into a task, end to end: the real ``ssh``, ``scp`` and ``rsync`` through the ProxyCommand that
``easyai ssh-config`` writes (the installed ``easyai`` command), the portal's SSH socket under a real ASGI server,
and the task's Dropbear on the local backend, in the task's sandbox where this host makes them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts import services as account_services
from clusters.backends.contract import storage
from conftest import token_key_for
from jobs.models import Job, ShellSession
from jobs.tests.conftest import GATED, log_path
from testing.sockets import open_socket, read_until_closed
from testing.wait import wait_until

pytestmark = pytest.mark.slow

EASYAI = Path(sysconfig.get_path("scripts")) / "easyai"


@pytest.fixture(autouse=True)
def _needs_the_toolbox():
    from clusters.backends.local import tools

    if not tools.can_ssh() or not shutil.which("ssh"):
        pytest.skip("this host lacks " + "; ".join(tools.missing() or ["the OpenSSH client"]))


@pytest.fixture(scope="module")
def key_files(tmp_path_factory) -> dict[str, Path]:
    """A real key pair per person (ssh-keygen): name -> the private key's path (the public one beside it)."""
    folder = tmp_path_factory.mktemp("ssh-keys")
    made = {}
    for name in ("owner", "mate", "team_admin"):
        path = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        made[name] = path
    return made


def add_key(user, key_files, name: str | None = None) -> None:
    public = (key_files[name or user.username].with_suffix(".pub")).read_text()
    account_services.ssh_key_add(user=user, public_key=public)


class Client:
    """One person's machine: the easyai CLI configured with their token, ssh with the config ssh-config wrote."""

    def __init__(self, asgi_server, user, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ssh_config = folder / "ssh_config"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
        self.env.update(
            EASYAI_URL=asgi_server.http_url,
            EASYAI_TOKEN=token_key_for(user),
            EASYAI_CONFIG_DIR=str(folder / "easyai"),
            HOME=str(folder / "home"),
        )
        written = self.easyai("ssh-config", "--write", "--file", str(self.ssh_config))
        assert written.returncode == 0, written.stderr

    def easyai(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(EASYAI), *argv], capture_output=True, text=True, env=self.env, timeout=60, stdin=subprocess.DEVNULL
        )

    def ssh_argv(self, identity: Path) -> list[str]:
        return ["-F", str(self.ssh_config), "-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]

    def ssh(self, identity: Path, host: str, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", *self.ssh_argv(identity), host, command],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )


def test_ssh_scp_and_rsync_through_easyai_ssh_configs_proxy_command(
    asgi_server, run_job, owner, tmp_path, key_files, local_cluster
):
    add_key(owner, key_files)
    work = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username) / "project"
    job = run_job(
        owner,
        f"echo weights-{os.getpid()} > model.txt; mkdir -p tree/sub; echo leaf > tree/sub/a; {GATED}",
        working_dir=str(work),
        env={"HOME": str(tmp_path / "home"), "COLOR": "blue"},
    )
    wait_until(lambda: (work / "model.txt").exists(), what="the task to start")
    client = Client(asgi_server, owner, tmp_path / "laptop")
    text = client.ssh_config.read_text()
    assert "Host j-*" in text and f"{EASYAI} ssh-proxy %h" in text and "User easyai" in text
    host = f"{job.public_id}.main-0"

    done = client.ssh(key_files["owner"], host, "echo color=$COLOR; pwd; id -u; echo from-ssh > made.txt; exit 5")
    assert done.returncode == 5, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["color=blue", str(work)]  # the task's environment and working directory
    assert (work / "made.txt").read_text() == "from-ssh\n"
    if local_cluster.backend().sandbox() is not None:
        assert lines[2] == str(local_cluster.backend().config().sandbox_user)  # as the task's user, in its sandbox

    copied = tmp_path / "copied.txt"
    scp = subprocess.run(
        ["scp", *client.ssh_argv(key_files["owner"]), f"{host}:model.txt", str(copied)],
        capture_output=True,
        text=True,
        env=client.env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert scp.returncode == 0, scp.stderr
    assert copied.read_text() == f"weights-{os.getpid()}\n"

    if shutil.which("rsync"):
        target = tmp_path / "synced"
        ssh_command = " ".join(["ssh", *client.ssh_argv(key_files["owner"])])
        rsync = subprocess.run(
            ["rsync", "-a", "-e", ssh_command, f"{host}:tree/", str(target)],
            capture_output=True,
            text=True,
            env=client.env,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert rsync.returncode == 0, rsync.stderr
        assert (target / "sub" / "a").read_text() == "leaf\n"

    # Each connection is on the record as an SSH session, closed once ssh ended.
    wait_until(lambda: not ShellSession.objects.filter(closed_at__isnull=True).exists(), what="sessions to close")
    sessions = list(ShellSession.objects.filter(job=job).order_by("opened_at"))
    assert len(sessions) == (3 if shutil.which("rsync") else 2)
    for session in sessions:
        assert (session.kind, session.username, session.task, session.client) == ("ssh", "owner", "main-0", "127.0.0.1")
        assert session.closed_at >= session.opened_at
    (storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "share_dir") / "go").touch()


def test_easyai_ssh_runs_a_command_in_the_jobs_first_task(asgi_server, run_job, owner, tmp_path, key_files):
    add_key(owner, key_files)
    job = run_job(owner, GATED, env={"HOME": str(tmp_path / "home"), "COLOR": "green"})
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    client = Client(asgi_server, owner, tmp_path / "laptop")

    done = client.easyai(
        "ssh", job.public_id, "-i", str(key_files["owner"]), "-o", "BatchMode=yes", "--", "echo color=$COLOR"
    )
    assert (done.returncode, done.stdout) == (0, "color=green\n"), done.stderr
    wrong = client.easyai("ssh", f"{job.public_id}/main-3", "--", "true")
    assert wrong.returncode == 1 and f"job {job.public_id} has no task 'main-3'" in wrong.stderr


def test_mates_and_outsiders_are_refused_at_the_socket_and_a_mates_key_by_ssh(
    asgi_server, run_job, people, tmp_path, key_files
):
    owner, mate, admin = people["owner"], people["mate"], people["team_admin"]
    add_key(owner, key_files)
    add_key(mate, key_files)
    job = run_job(owner, GATED, env={"HOME": str(tmp_path / "home")})
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    path = f"/ws/jobs/{job.public_id}/tasks/main-0/ssh/"

    for who, code, reason in [
        ("outsider", 4404, f"No job {job.public_id} that you may see"),
        ("mate", 4403, "Only the job's owner, a team admin or a platform admin"),
        (None, 4401, "Sign in"),
        ("team_admin", 4412, "You have no SSH key"),  # allowed, but without a key of their own
    ]:
        with open_socket(asgi_server, path, people.get(who)) as ws:
            frames, close_code, _ = read_until_closed(ws)
        assert close_code == code, who
        assert len(frames) == 1 and reason in frames[0]["reason"], (who, frames)
    assert not ShellSession.objects.exists()  # a refusal opens nothing

    host = f"{job.public_id}.main-0"
    # The team-mate with their own token and key: refused by the portal; ssh shows the portal's reason.
    refused = Client(asgi_server, mate, tmp_path / "mate").ssh(key_files["mate"], host, "true")
    assert refused.returncode == 255 and "Only the job's owner, a team admin" in refused.stderr

    # The owner's token with the team-mate's key: the task's SSH server takes only the owner's keys.
    owners = Client(asgi_server, owner, tmp_path / "owner")
    borrowed = owners.ssh(key_files["mate"], host, "echo should-not-run")
    assert borrowed.returncode == 255 and "Permission denied (publickey)" in borrowed.stderr
    assert "should-not-run" not in borrowed.stdout

    # The team admin with a key of their own is let in.
    add_key(admin, key_files, "team_admin")
    allowed = Client(asgi_server, admin, tmp_path / "admin").ssh(key_files["team_admin"], host, "echo admin-in")
    assert (allowed.returncode, allowed.stdout) == (0, "admin-in\n"), allowed.stderr
    wait_until(lambda: not ShellSession.objects.filter(closed_at__isnull=True).exists(), what="sessions to close")
    assert sorted(ShellSession.objects.values_list("username", "kind")) == [("owner", "ssh"), (admin.username, "ssh")]


def test_ssh_into_an_ended_task_is_refused_and_a_held_one_is_let_in(
    asgi_server, run_job, owner, tmp_path, key_files, local_cluster
):
    from jobs import workers

    add_key(owner, key_files)
    client = Client(asgi_server, owner, tmp_path / "laptop")
    ended = run_job(owner, "echo done", env={"HOME": str(tmp_path / "home")})

    def final(job: Job):
        workers.cluster_sync(local_cluster)
        fresh = Job.objects.get(pk=job.pk)
        return fresh if fresh.is_final else None

    wait_until(lambda: final(ended), what="the job to end")
    with open_socket(asgi_server, f"/ws/jobs/{ended.public_id}/tasks/main-0/ssh/", owner) as ws:
        frames, code, _ = read_until_closed(ws)
    assert code == 4409 and "has ended" in frames[0]["reason"]

    held = run_job(owner, "exit 3", env={"HOME": str(tmp_path / "home")}, debug={"keep_failed": "10m"})

    def failed_and_held() -> Job | None:
        workers.cluster_sync(local_cluster)
        fresh = Job.objects.get(pk=held.pk)
        return fresh if fresh.state == "failed" and fresh.held_until else None

    job = wait_until(failed_and_held, what="the job to fail and be held")
    assert job.held_until > timezone.now()
    inside = client.ssh(key_files["owner"], f"{held.public_id}.main-0", "echo held-and-in")
    assert (inside.returncode, inside.stdout) == (0, "held-and-in\n"), inside.stderr


def test_stopping_the_job_ends_its_ssh_connections(asgi_server, run_job, owner, tmp_path, key_files, local_cluster):
    add_key(owner, key_files)
    job = run_job(owner, GATED, env={"HOME": str(tmp_path / "home")})
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    client = Client(asgi_server, owner, tmp_path / "laptop")
    session = subprocess.Popen(
        ["ssh", *client.ssh_argv(key_files["owner"]), f"{job.public_id}.main-0", "echo in; sleep 600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=client.env,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert session.stdout.readline() == b"in\n"
        local_cluster.backend().stop(job.public_id)
        wait_until(lambda: session.poll() is not None, what="ssh to end with the job")
    finally:
        if session.poll() is None:
            session.kill()
        session.wait()
    wait_until(
        lambda: ShellSession.objects.filter(job=job, kind="ssh", closed_at__isnull=False).exists(),
        what="the session to be closed on the record",
    )


def test_a_port_of_the_task_is_forwarded_as_vs_codes_remote_ssh_forwards_its_server(
    asgi_server, run_job, owner, tmp_path, key_files
):
    """VS Code's Remote-SSH reaches the server it starts in the task by SSH port forwarding: ``ssh -L`` through
    the portal's tunnel reaches a port the task listens on, on the task's own loopback."""
    add_key(owner, key_files)
    page = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username) / "served"  # seen there
    page.mkdir(parents=True, exist_ok=True)
    (page / "index.html").write_text(f"served-in-the-task-{os.getpid()}\n")
    page.chmod(0o755)
    (page / "index.html").chmod(0o644)
    task_port, local_port = (_free_port() for _ in range(2))
    job = run_job(
        owner,
        f"{sys.executable} -m http.server {task_port} --bind 127.0.0.1 --directory {page} & {GATED}; kill $!",
    )
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    client = Client(asgi_server, owner, tmp_path / "laptop")
    forward = subprocess.Popen(
        ["ssh", *client.ssh_argv(key_files["owner"]), "-N", "-o", "ExitOnForwardFailure=yes",
         "-L", f"127.0.0.1:{local_port}:127.0.0.1:{task_port}", f"{job.public_id}.main-0"],
        env=client.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def through_the_tunnel() -> bytes | None:
            assert forward.poll() is None, forward.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/index.html", timeout=5) as answer:
                    return answer.read()
            except OSError:
                return None

        body = wait_until(through_the_tunnel, what="the forwarded port to answer", timeout=60)
        assert body == f"served-in-the-task-{os.getpid()}\n".encode()
    finally:
        forward.terminate()
        forward.wait(timeout=10)
    (storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "share_dir") / "go").touch()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
