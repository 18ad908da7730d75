"""The debug toolbox on the Kubernetes backend, against the fake API server with the real client: an SSH
connection over the exec API (its command, its bytes both ways, its exit status), a hold's release, a held
task's observation, the web shell's PATH. Where a program runs in a pod, the fake runs it for real on this host
(``process_program``, the pod's /easyai paths mapped to a temporary folder)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from clusters.backends.base import BackendError, DebugBackend, ObservedState
from clusters.backends.contract.storage import task_log_path
from clusters.backends.kubernetes import KubernetesBackend
from clusters.backends.kubernetes.backend import DEFAULT_SHELL, shell_command
from testing.fakekube import (
    NS,
    PYTORCH,
    VCJOB,
    ExecChannels,
    ExecSession,
    FakeKube,
    make_cluster,
    make_job,
    process_program,
    run_pods,
)

pytestmark = pytest.mark.django_db

JOB = "j-ab12cd34"
SSH_COMMAND_TAIL = ["/easyai/tools/easyai-inetd", "/easyai/tools/busybox", "sh", "/easyai/tools/easyai-sshd"]


def backend_for(fake: FakeKube, **fields: Any) -> KubernetesBackend:
    return KubernetesBackend(make_cluster(fake, **fields))


def condition(kind: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": kind, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def held_job(framework: str = "pytorch", mode: str = "keep_failed", seconds: int = 1800):
    job = make_job(framework)
    for task in job.tasks:
        task.hold_mode, task.hold_seconds = mode, seconds
    return job


def submitted(fake: FakeKube, job, kind=PYTORCH, **pod_fields: Any) -> tuple[KubernetesBackend, list[dict]]:
    """The job submitted, its pods running as the operator makes them from the rendered templates."""
    backend = backend_for(fake, **pod_fields.pop("cluster_fields", {}))
    backend.submit(job)
    pods = run_pods(fake, kind, JOB, from_template=True, **pod_fields)
    fake.set_status(*kind, NS, JOB, {"conditions": [condition("Created"), condition("Running")]}
                    if kind == PYTORCH else {"state": {"phase": "Running"}})  # fmt: skip
    return backend, pods


def pod_folders(root: Path) -> Any:
    """A rewrite of a pod's /easyai paths to a folder per pod under root (the fake's exec runs there)."""

    def for_session(session: ExecSession) -> Any:
        base = root / session.pod
        return lambda argv: [arg.replace("/easyai/", f"{base}/") for arg in argv]

    return for_session


def per_pod_program(root: Path) -> Any:
    """Each exec runs its command for real in its pod's folder (tools from the host's busybox)."""
    folders = pod_folders(root)

    def run(session: ExecSession, channels: ExecChannels) -> int:
        return process_program(folders(session))(session, channels)

    return run


def pod_folder(root: Path, pod: str) -> Path:
    base = root / pod
    (base / "run").mkdir(parents=True, exist_ok=True)
    (base / "tools").mkdir(parents=True, exist_ok=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not (base / "tools" / "busybox").exists():
        (base / "tools" / "busybox").symlink_to(busybox)
    return base


needs_busybox = pytest.mark.skipif(
    shutil.which("busybox") is None, reason="busybox (Debian's busybox-static) is not installed; CI installs it"
)


# --- SSH over the exec API --------------------------------------------------------------------------------


def test_the_kubernetes_backend_is_a_debug_backend(fake_kube):
    assert isinstance(backend_for(fake_kube), DebugBackend)


def test_open_ssh_runs_the_ssh_server_over_an_exec_without_a_terminal(fake_kube):
    backend, _pods = submitted(fake_kube, make_job("pytorch"))

    def server(session: ExecSession, channels: ExecChannels) -> int:
        # Stands in for easyai-inetd: every byte it is given comes back upper-cased, until "BYE".
        channels.write_stderr(b"a word on stderr\n")
        seen = b""
        while (data := channels.read(timeout=5)) is not None:
            seen += data
            channels.write(data.upper())
            if b"bye" in seen:
                return 3
        return 0

    fake_kube.on_exec(server)
    keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB admin"]
    session = backend.open_ssh(JOB, "worker-1", keys)
    session.write(b"\x00binary\xff hello ")
    session.write(b"bye")
    received = b""
    deadline = time.monotonic() + 10
    while (chunk := session.read(0.2)) is not None and time.monotonic() < deadline:
        received += chunk
    assert chunk is None  # the program ended: so did the session
    assert received == b"\x00BINARY\xff HELLO BYE"  # stdout only, byte for byte; stderr is not part of the stream
    assert session.exit_code == 3
    session.close()
    (exec_session,) = fake_kube.execs
    assert exec_session.pod == f"{JOB}-worker-1" and exec_session.stdin == b"\x00binary\xff hello bye"
    assert exec_session.command == [
        "/easyai/tools/busybox", "env", "EASYAI_TOOLS=/easyai/tools", "EASYAI_SSH_KEYS=" + "\n".join(keys),
        *SSH_COMMAND_TAIL,
    ]  # fmt: skip
    assert exec_session.query["container"] == "pytorch"
    assert (exec_session.query["stdin"], exec_session.query["stdout"], exec_session.query["tty"]) == (
        "true", "true", "false")  # fmt: skip


def test_closing_the_session_ends_the_programs_input(fake_kube):
    backend, _pods = submitted(fake_kube, make_job("pytorch"))
    ended: list[bool] = []

    def server(session: ExecSession, channels: ExecChannels) -> int:
        while channels.read(timeout=10) is not None:
            pass
        ended.append(True)
        return 0

    fake_kube.on_exec(server)
    session = backend.open_ssh(JOB, "master-0", ["ssh-ed25519 AAAA k"])
    session.write(b"some bytes")
    session.close()
    assert session.read() is None
    deadline = time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended == [True]


def test_open_ssh_needs_a_running_pod_with_the_tools(fake_kube):
    backend = backend_for(fake_kube)
    with pytest.raises(BackendError, match="has no pod"):
        backend.open_ssh(JOB, "master-0", ["ssh-ed25519 AAAA k"])
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, JOB)  # pods from before the toolbox: no tools volume
    with pytest.raises(BackendError, match="started without the debug tools"):
        backend.open_ssh(JOB, "master-0", ["ssh-ed25519 AAAA k"])
    assert fake_kube.execs == []


def test_open_ssh_needs_the_task_running(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, JOB, from_template=True, phase="Pending")
    with pytest.raises(BackendError, match="worker-0 of job j-ab12cd34 is not running"):
        backend.open_ssh(JOB, "worker-0", ["ssh-ed25519 AAAA k"])
    assert fake_kube.execs == []


# --- holds: release and observe ----------------------------------------------------------------------------


@needs_busybox
def test_release_hold_makes_the_release_file_only_where_a_task_holds(fake_kube, tmp_path):
    backend, pods = submitted(fake_kube, held_job())
    for pod in pods:
        pod_folder(tmp_path, pod["metadata"]["name"])
    (tmp_path / f"{JOB}-worker-1" / "run" / "held").write_text(f"keep_failed 2 {int(time.time()) + 600}\n")
    fake_kube.on_exec(per_pod_program(tmp_path))

    backend.release_hold(JOB)
    assert (tmp_path / f"{JOB}-worker-1" / "run" / "release").exists()
    # The others do not hold: a release made there now would cut short a hold that comes later.
    assert not (tmp_path / f"{JOB}-master-0" / "run" / "release").exists()
    assert not (tmp_path / f"{JOB}-worker-0" / "run" / "release").exists()
    assert {session.pod for session in fake_kube.execs} == {p["metadata"]["name"] for p in pods}
    assert fake_kube.execs[0].command == [
        "/easyai/tools/busybox", "sh", "-c",
        "[ ! -e /easyai/run/held ] || /easyai/tools/busybox touch /easyai/run/release",
    ]  # fmt: skip
    backend.release_hold(JOB)  # idempotent
    assert all(session.exit_code == 0 for session in fake_kube.execs)


def test_release_hold_leaves_jobs_without_a_hold_alone(fake_kube):
    backend, _pods = submitted(fake_kube, make_job("pytorch"))
    backend.release_hold(JOB)
    backend.release_hold("j-gone0000")
    assert fake_kube.execs == []


def test_a_failed_release_says_so(fake_kube):
    backend, _pods = submitted(fake_kube, held_job())
    fake_kube.on_exec(lambda session, channels: 1)
    with pytest.raises(BackendError, match="release did not end well"):
        backend.release_hold(JOB)


@needs_busybox
@pytest.mark.parametrize("mode", ["keep_failed", "pause_on_failure"])
def test_a_held_task_is_observed_from_its_held_file(fake_kube, tmp_path, mode):
    backend, pods = submitted(fake_kube, held_job(mode=mode))
    for pod in pods:
        pod_folder(tmp_path, pod["metadata"]["name"])
    fake_kube.on_exec(per_pod_program(tmp_path))
    until = int(time.time()) + 1800
    (tmp_path / f"{JOB}-worker-1" / "run" / "held").write_text(f"{mode} 7 {until}\n")
    # The readiness probe on the held file: only worker-1's container is not ready.
    pod = fake_kube.get("", "v1", "pods", NS, f"{JOB}-worker-1")
    pod["status"]["containerStatuses"][0]["ready"] = False

    seen = backend.observe([JOB])[JOB]
    tasks = {(t.role, t.index): t for t in seen.tasks}
    held = tasks[("worker", 1)]
    assert (held.held, held.exit_code) == (mode, 7)
    assert held.held_until == datetime.fromtimestamp(until, UTC)
    assert [session.pod for session in fake_kube.execs] == [f"{JOB}-worker-1"]  # the ready pods are not asked
    assert fake_kube.execs[0].command == ["/easyai/tools/busybox", "cat", "/easyai/run/held"]
    assert tasks[("master", 0)].held == "" and tasks[("master", 0)].state == ObservedState.RUNNING
    if mode == "keep_failed":
        # The operator still shows the job running (the pod runs on, held): the job has failed all the same.
        assert held.state == ObservedState.FAILED
        assert (seen.state, seen.reason) == (ObservedState.FAILED, "Held")
        assert "worker-1 exited with code 7" in seen.message
        assert held.finished_at == datetime.fromtimestamp(until, UTC) - timedelta(seconds=1800)
        assert seen.finished_at == held.finished_at
        # Kept: nothing is deleted and the logs are copied by the cleanup after the hold, not now.
        assert fake_kube.requests("DELETE") == []
        assert not task_log_path(Path(settings.EASYAI_STORAGE_ROOT), JOB, "worker-1").exists()
    else:
        assert held.state == ObservedState.RUNNING and seen.state == ObservedState.RUNNING


@needs_busybox
def test_a_pod_not_ready_yet_without_a_held_file_is_not_held(fake_kube, tmp_path):
    backend, pods = submitted(fake_kube, held_job("batch"), kind=VCJOB, ready=False)
    for pod in pods:
        pod_folder(tmp_path, pod["metadata"]["name"])
    fake_kube.on_exec(per_pod_program(tmp_path))
    seen = backend.observe([JOB])[JOB]
    assert seen.state == ObservedState.RUNNING
    assert all(task.held == "" and task.state == ObservedState.RUNNING for task in seen.tasks)
    assert len(fake_kube.execs) == len(pods)


def test_an_unreadable_hold_leaves_the_observation_as_the_operator_says(fake_kube):
    backend, pods = submitted(fake_kube, held_job(), ready=False)
    fake_kube.on_exec(lambda session, channels: (channels.write(b"garbage"), 0)[1])
    seen = backend.observe([JOB])[JOB]
    assert seen.state == ObservedState.RUNNING and all(task.held == "" for task in seen.tasks)


def test_a_sync_pass_asks_no_pod_of_a_job_without_a_hold(fake_kube):
    backend, _pods = submitted(fake_kube, make_job("pytorch"), ready=False)
    backend.observe(["warm-up"])
    fake_kube.clear_journal()
    backend.observe([JOB])
    assert fake_kube.execs == [] and fake_kube.requests("GET", r"/exec$") == []
    # 5 training-operator kinds + Volcano jobs + one pod list + the Events of the job's namespace, as without
    # the toolbox.
    assert len(fake_kube.journal) == 8


# --- the web shell ------------------------------------------------------------------------------------------


def test_the_web_shell_runs_the_login_shell_with_the_tools_on_path(fake_kube):
    backend, _pods = submitted(fake_kube, make_job("pytorch"))
    shell = backend.open_shell(JOB, "worker-1")
    shell.close()
    (session,) = fake_kube.execs
    assert session.command == DEFAULT_SHELL == shell_command("/easyai/tools/bin")
    assert (session.query["tty"], session.query["stdin"]) == ("true", "true")


def _interactive(argv: list[str], typed: bytes, until: bytes, env: dict[str, str]) -> bytes:
    """Run argv in a terminal, type into it, and read until ``until`` appears (or 15 s pass)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the shell in the terminal
        os.execve(argv[0], argv, env)
    output = b""
    try:
        os.write(fd, typed)
        deadline = time.monotonic() + 15
        while until not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return output


@pytest.mark.parametrize("login", ["bash", "sh"])
def test_the_web_shell_puts_the_tools_after_the_images_path_even_when_a_profile_resets_it(tmp_path, login):
    """On this (Debian) host /etc/profile sets PATH again; the tools come after whatever the shell ends with."""
    if login == "bash" and not shutil.which("bash"):
        pytest.skip("no bash on this host")
    tools_bin = tmp_path / "tools" / "bin"
    tools_bin.mkdir(parents=True)
    argv = shell_command(str(tools_bin))
    if login == "sh":  # an image without bash
        argv[2] = argv[2].replace("command -v bash", "command -v no-such-bash")
    env = {"PATH": "/opt/image/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb"}
    typed = b'echo "<$PATH>"\n'
    output = _interactive(argv, typed, f":{tools_bin}>".encode(), env).decode(errors="replace")
    assert f":{tools_bin}>" in output
    if login == "bash":
        # bash: its first prompt puts them back after a profile reset them; only once.
        assert output.count(str(tools_bin)) >= 1 and f"{tools_bin}:{tools_bin}" not in output


# --- a real SSH connection through the exec path ------------------------------------------------------------


def _missing_for_ssh() -> str:
    from clusters.backends.local import tools

    lacking = [name for name in ("gcc", "ssh", "scp", "ssh-keygen") if shutil.which(name) is None]
    lacking += tools.missing()
    return ", ".join(lacking)


@pytest.mark.skipif(bool(_missing_for_ssh()), reason=f"needs {_missing_for_ssh()} (CI installs them)")
def test_a_real_ssh_client_through_open_ssh_runs_a_command_and_scp_copies_a_file(fake_kube, tmp_path):
    from clusters.tests.test_k8s_tools_image import build_tools, ssh_options, ssh_tcp_bridge

    place = tmp_path / "pod" / "tools"
    build_tools(place)
    key, stranger = tmp_path / "id", tmp_path / "stranger"
    for path in (key, stranger):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    (tmp_path / "pod" / "data.txt").write_text("weights 0.5\n")
    backend, _pods = submitted(fake_kube, make_job("pytorch"))

    def rewrite(argv: list[str]) -> list[str]:
        return [arg.replace("/easyai/tools", str(place)) for arg in argv]

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "pod"), "TMPDIR": str(tmp_path / "pod")}
    fake_kube.on_exec(process_program(rewrite, env=env, cwd=str(tmp_path / "pod")))
    public = (tmp_path / "id.pub").read_text().strip()
    with ssh_tcp_bridge(lambda: backend.open_ssh(JOB, "worker-1", [public])) as port:
        options = ssh_options(key, port)
        ran = subprocess.run(["ssh", *options, "easyai@127.0.0.1", "echo hello from $PWD; command -v ping"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == [f"hello from {tmp_path / 'pod'}", f"{place}/bin/ping"]
        copied = tmp_path / "copied.txt"
        scp = subprocess.run(["scp", *ssh_options(key, port, scp=True), "easyai@127.0.0.1:data.txt", str(copied)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert scp.returncode == 0, scp.stderr
        assert copied.read_text() == "weights 0.5\n"
        refused = subprocess.run(["ssh", *ssh_options(stranger, port), "easyai@127.0.0.1", "true"],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert [s.command[3] for s in fake_kube.execs] == [f"EASYAI_SSH_KEYS={public}"] * 3
