"""The debug toolbox on the local backend, with real processes in real sandboxes: the static tools on a task's PATH,
a role's services (restarted when they die, reachable on their named port), and the holds of a failed command
(keep_failed, pause_on_failure) with their release, stop and delete."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC
from pathlib import Path

import pytest

from clusters.backends.base import BackendError, BackendRejected, JobDescription, ObservedState
from clusters.backends.contract import storage
from clusters.backends.local import LocalBackend, tools
from clusters.backends.local import observe as reading
from clusters.backends.local.records import ENDED
from clusters.tests.conftest import GATED, gone, log_of, make_job, release, root, running_pid, wait_for
from clusters.tests.test_local_backend import host_pid
from testing.isolation import SANDBOX_REFUSED

PY = sys.executable

needs_busybox = pytest.mark.skipif(not tools.can_wrap(), reason="busybox is not installed (busybox-static)")
pytestmark = needs_busybox

# Sandboxed where the host can, and unsandboxed (isolation off) always.
MODES = [
    pytest.param(
        {}, id="sandboxed", marks=pytest.mark.skipif(bool(SANDBOX_REFUSED), reason=SANDBOX_REFUSED or "sandboxed")
    ),
    pytest.param({"isolation": False, "allow_unisolated": True}, id="unsandboxed"),
]


def poll(what: str, check, timeout: float = 30.0):
    """``check()``'s first truthy answer, asked again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s (last: {answer!r})")
        time.sleep(0.05)


def held_job(mode: str, seconds: int, command: str = "echo the command fails; exit 3", **kwargs) -> JobDescription:
    job = make_job([("main", 1, command)], **kwargs)
    for task in job.tasks:
        task.hold_mode, task.hold_seconds = mode, seconds
    return job


def ended(backend: LocalBackend, job: JobDescription) -> bool:
    """Whether every process of the job has ended (after a pass: observe() brings the record up to date)."""
    backend.observe([job.job_id])
    return backend.records.load(job.job_id)["status"] == ENDED


def task_dir(backend: LocalBackend, job: JobDescription, task: str = "main-0") -> Path:
    return backend.records.task_dir(job.job_id, task)


def processes_of(backend: LocalBackend, job: JobDescription) -> list[int]:
    """The pids of the job's supervisors still alive."""
    record = backend.records.load(job.job_id) or {"tasks": {}}
    return [t["supervisor_pid"] for t in record["tasks"].values() if t.get("supervisor_pid")]


def run_in_shell(backend: LocalBackend, job: JobDescription, command: list[str], timeout: float = 20.0) -> str:
    shell = backend.open_shell(job.job_id, "main-0", command)
    output = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = shell.read(0.1)
            if chunk is None:
                break
            output += chunk
    finally:
        shell.close()
    return output.decode(errors="replace").replace("\r", "")


# --- static tools -----------------------------------------------------------------------------------------------------


def busybox_only_applet(path: str) -> str:
    """An applet of busybox's that no program on ``path`` (the task's own PATH) provides."""
    applets = set(subprocess.run([tools.find_busybox(), "--list"], capture_output=True, text=True).stdout.split())
    for name in ("nc", "telnet", "nslookup", "httpd", "traceroute", "ping", "ftpget"):
        if name in applets and not shutil.which(name, path=path):
            return name
    pytest.skip("this host has every applet the test could use")


@pytest.mark.parametrize("mode", MODES)
def test_the_static_tools_answer_from_inside_a_task_after_the_hosts_own(local, mode, tmp_path):
    backend = local(**mode)
    task_path = os.pathsep.join([os.path.dirname(PY), os.environ.get("PATH", "/usr/bin:/bin")])
    applet = busybox_only_applet(task_path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    port = listener.getsockname()[1]
    script = (
        f'echo "sh=$(command -v sh)"; echo "{applet}=$(command -v {applet})"; {applet} --help 2>&1 | head -n 1; '
        'echo "path=$PATH"; '
    )
    if applet == "nc":
        script += f"printf from-the-task | nc 127.0.0.1 {port}"
    job = make_job([("main", 1, script)])
    backend.submit(job)
    try:
        if applet == "nc":
            connection, _ = listener.accept()  # busybox's nc, from inside the task, reaches the host's loopback
            with connection:
                connection.settimeout(30)
                assert connection.recv(100) == b"from-the-task"
    finally:
        listener.close()

    obs = wait_for(backend, job.job_id, timeout=30)

    assert obs.state == ObservedState.SUCCEEDED, obs.message
    lines = log_of(job, "main-0").splitlines()
    bin_dir = str(backend.tools_dir / "bin")
    assert lines[0] == f"sh={shutil.which('sh', path=task_path)}"  # the host's (the image's) own comes first
    assert lines[1] == f"{applet}={bin_dir}/{applet}"  # what it lacks, busybox gives
    assert lines[2].startswith("BusyBox v"), lines
    assert lines[3] == f"path={task_path}:{bin_dir}"


def test_the_tools_are_read_only_in_the_sandbox(local):
    if SANDBOX_REFUSED:
        pytest.skip(SANDBOX_REFUSED)
    backend = local()
    job = make_job([("main", 1, 'touch "$EASYAI_TOOLS/planted" 2>/dev/null && echo written || echo refused; id -u')])
    backend.submit(job)

    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    assert log_of(job, "main-0").splitlines() == ["refused", "65534"]
    assert not (backend.tools_dir / "planted").exists()
    assert oct((task_dir(backend, job) / "run").stat().st_mode & 0o777) == "0o700"


# --- services -----------------------------------------------------------------------------------------------------------


def get(address: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=2) as response:
            return response.status
    except OSError:
        return None


@pytest.mark.parametrize("mode", MODES)
def test_a_service_starts_beside_the_command_restarts_when_killed_and_answers_on_its_port(local, mode):
    backend = local(**mode)
    job = make_job([("main", 1, GATED)])
    task = job.tasks[0]
    command = f"exec {PY} -m http.server $EASYAI_PORT_WEB --bind 127.0.0.1"
    task.services = [{"name": "web", "command": command, "port": 8000}]
    task.ports = {"web": 8000}
    backend.submit(job)
    sandboxed = "isolation" not in mode
    supervisor = running_pid(backend, job.job_id)
    services = task_dir(backend, job) / "run" / "services"

    obs = poll("endpoint", lambda: wait_for(backend, job.job_id, (ObservedState.RUNNING,)).tasks[0].endpoints)
    address = obs["web"]
    assert address.startswith("127.0.0.1:") and address != "127.0.0.1:8000"  # a free host port of its own
    assert poll("answer", lambda: get(address)) == 200
    pid = int((services / "web.pid").read_text())
    assert not (services / "web.restarts").exists()

    os.kill(host_pid(supervisor, pid) if sandboxed else pid, signal.SIGKILL)

    poll("restart", lambda: (services / "web.restarts").exists() and int((services / "web.pid").read_text()) != pid)
    assert (services / "web.restarts").read_text().strip() == "1"
    assert poll("answer after the restart", lambda: get(address)) == 200
    seen = wait_for(backend, job.job_id, (ObservedState.RUNNING,))
    assert seen.tasks[0].message == "services restarted: web 1 time"
    # The service's log lies beside the task's, where the portal keeps logs: it outlives the job.
    log = storage.task_log_path(root(), job.job_id, "main-0").parent / "main-0.services" / "web.log"
    text = log.read_text()
    assert text.count("easyai: starting service web") == 2 and "GET / HTTP" in text
    assert "restarting in" in text

    release(job)
    obs = wait_for(backend, job.job_id, timeout=30)
    assert obs.state == ObservedState.SUCCEEDED, obs.message
    assert get(address) is None  # the service ended with its task
    assert "GET /" not in log_of(job, "main-0")  # the task's own log holds its command's output, not the service's
    backend.delete(job.job_id)
    assert log.exists()


def test_render_shows_the_wrapper_the_services_and_the_hold(local):
    backend = local()
    job = held_job("keep_failed", 600)
    job.tasks[0].services = [{"name": "tb", "command": "tensorboard --port $EASYAI_PORT_TB", "port": 6006}]
    job.tasks[0].ports = {"tb": 6006}

    plan = backend.render(job)[0]

    tools_dir = str(backend.tools_dir)
    assert plan["argv"][:3] == [f"{tools_dir}/busybox", "sh", f"{tools_dir}/easyai-task"]
    assert plan["argv"][3:] == plan["command"] == job.tasks[0].command
    assert plan["services"] == [{"name": "tb", "command": "tensorboard --port $EASYAI_PORT_TB", "port": 6006}]
    assert plan["hold"] == {"mode": "keep_failed", "seconds": 600}
    assert plan["ports"] == {"tb": 6006}
    assert {"EASYAI_SERVICE_TB", "EASYAI_HOLD", "EASYAI_HOLD_SECONDS", "EASYAI_PORT_TB"} <= set(plan["env"])
    if plan["sandbox"]:
        assert tools_dir in plan["sandbox"]["read_only"]
        assert plan["toolbox"]["run_dir"] in plan["sandbox"]["writable"]
    assert not task_dir(backend, job).exists()  # nothing started


# --- holds ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_keep_failed_fails_the_job_keeps_the_task_to_shell_into_until_its_time_runs_out_then_cleans_up(local, mode):
    backend = local(**mode)
    hold = 6
    job = held_job("keep_failed", hold)
    before = time.time()
    backend.submit(job)

    obs = poll("hold", lambda: (o := backend.observe([job.job_id])[job.job_id]).tasks[0].held and o)
    after = time.time()

    assert (obs.state, obs.reason) == (ObservedState.FAILED, "exit_code")
    assert obs.message.startswith("task main-0 exited with code 3: the command fails")
    seen = obs.tasks[0]
    assert (seen.state, seen.exit_code, seen.held) == (ObservedState.FAILED, 3, "keep_failed")
    assert seen.held_until.tzinfo == UTC
    assert int(before) + hold <= seen.held_until.timestamp() <= after + hold
    # Its resources stay with it on this host while its process is there.
    capacity = backend.capacity()
    assert capacity.free_cpu_milli == capacity.cpu_milli - 1000
    assert reading.task_held(backend.records, job.job_id, "main-0") == ("keep_failed", 3, seen.held_until.timestamp())

    # A shell still opens in it, in its environment (and its sandbox, as its user).
    output = run_in_shell(backend, job, ["/bin/sh", "-c", 'echo "in $EASYAI_TASK_NAME as $(id -u)"'])
    assert f"in main-0 as {65534 if 'isolation' not in mode else os.getuid()}" in output, output

    # The time runs out: the wrapper ends by itself, with its command's status, and nothing is left.
    supervisors = processes_of(backend, job)
    assert supervisors and not any(gone(pid) for pid in supervisors)  # still there, though the job failed
    poll("end of the hold", lambda: ended(backend, job), timeout=hold + 30)
    obs = backend.observe([job.job_id])[job.job_id]
    assert (obs.state, obs.tasks[0].state, obs.tasks[0].exit_code, obs.tasks[0].held) == (
        ObservedState.FAILED,
        ObservedState.FAILED,
        3,
        "",
    )
    poll("the processes gone", lambda: all(gone(pid) for pid in supervisors))  # exit.json comes just before
    assert reading.task_held(backend.records, job.job_id, "main-0") is None
    assert "held for debugging" in log_of(job, "main-0")
    capacity = backend.capacity()
    assert capacity.free_cpu_milli == capacity.cpu_milli
    with pytest.raises(BackendError, match="not running"):
        backend.open_shell(job.job_id, "main-0", ["true"])

    backend.delete(job.job_id)
    assert backend.observe([job.job_id])[job.job_id].state == ObservedState.MISSING
    assert not backend.records.task_dir(job.job_id, "main-0").exists()


def test_release_hold_ends_a_keep_failed_hold_early_and_is_idempotent(local):
    backend = local()
    job = held_job("keep_failed", 600)
    backend.submit(job)
    poll("hold", lambda: backend.observe([job.job_id])[job.job_id].tasks[0].held)
    supervisors = processes_of(backend, job)

    backend.release_hold(job.job_id)
    backend.release_hold(job.job_id)

    poll("end", lambda: ended(backend, job))
    obs = backend.observe([job.job_id])[job.job_id]
    assert (obs.state, obs.tasks[0].exit_code, obs.tasks[0].held) == (ObservedState.FAILED, 3, "")
    poll("the processes gone", lambda: all(gone(pid) for pid in supervisors))  # exit.json comes just before
    backend.release_hold(job.job_id)  # ended: nothing to do
    backend.delete(job.job_id)
    backend.release_hold(job.job_id)  # gone: nothing to do
    backend.release_hold("j-nosuchjob")


def test_pause_on_failure_keeps_the_task_running_until_released_then_it_fails(local):
    backend = local()
    job = held_job("pause_on_failure", 600)
    backend.submit(job)

    obs = poll("hold", lambda: (o := backend.observe([job.job_id])[job.job_id]).tasks[0].held and o)

    assert obs.state == ObservedState.RUNNING
    seen = obs.tasks[0]
    assert (seen.state, seen.held, seen.exit_code) == (ObservedState.RUNNING, "pause_on_failure", 3)
    assert seen.held_until.tzinfo == UTC
    output = run_in_shell(backend, job, ["/bin/sh", "-c", 'cat "$EASYAI_RUN_DIR/held"'])
    assert f"pause_on_failure 3 {int(seen.held_until.timestamp())}" in output

    backend.release_hold(job.job_id)

    obs = wait_for(backend, job.job_id, timeout=30)
    assert (obs.state, obs.tasks[0].state, obs.tasks[0].exit_code) == (ObservedState.FAILED, ObservedState.FAILED, 3)
    assert obs.tasks[0].held == "" and obs.tasks[0].held_until is None


def test_a_stop_ends_a_held_job_at_once_with_its_commands_status(local):
    backend = local(stop_grace=30)
    job = held_job("keep_failed", 600)
    backend.submit(job)
    poll("hold", lambda: backend.observe([job.job_id])[job.job_id].tasks[0].held)
    supervisors = processes_of(backend, job)

    backend.stop(job.job_id)

    # Ended within the grace period by the wrapper itself (it would be 137 after the grace period's SIGKILL).
    assert backend.records.load(job.job_id)["status"] == ENDED
    obs = backend.observe([job.job_id])[job.job_id]
    assert (obs.state, obs.tasks[0].exit_code, obs.tasks[0].held) == (ObservedState.FAILED, 3, "")
    poll("the processes gone", lambda: all(gone(pid) for pid in supervisors))  # exit.json comes just before


def test_a_held_task_stays_when_its_job_fails_while_the_others_are_stopped_and_delete_ends_it(local):
    backend = local(cpu=3)
    job = make_job([("master", 1, GATED), ("worker", 1, "exit 5")])
    for task in job.tasks:
        task.hold_mode, task.hold_seconds = "keep_failed", 600
    backend.submit(job)

    obs = poll(
        "the master stopped", lambda: (o := backend.observe([job.job_id])[job.job_id]).tasks[0].finished_at and o
    )

    assert obs.state == ObservedState.FAILED and obs.message.startswith("task worker-0 exited with code 5")
    master, worker = obs.tasks
    assert master.state == ObservedState.STOPPED and master.held == ""
    assert (worker.state, worker.exit_code, worker.held) == (ObservedState.FAILED, 5, "keep_failed")
    assert backend.records.load(job.job_id)["status"] != ENDED  # the held worker is there still
    supervisors = processes_of(backend, job)

    backend.delete(job.job_id)

    poll("the processes gone", lambda: all(gone(pid) for pid in supervisors))  # exit.json comes just before
    assert backend.observe([job.job_id])[job.job_id].state == ObservedState.MISSING


def test_a_job_with_services_or_a_hold_is_refused_where_busybox_is_not(local, monkeypatch):
    backend = local()
    monkeypatch.setattr(tools, "find_busybox", lambda: None)  # this host without busybox-static
    plain = make_job([("main", 1, "true")])
    with_services = make_job([("main", 1, "true")])
    with_services.tasks[0].services = [{"name": "web", "command": "true", "port": 8000}]
    with_services.tasks[0].ports = {"web": 8000}

    assert backend.check(plain) == []
    assert backend.render(plain)[0]["argv"] == ["/bin/sh", "-c", "true"]  # unwrapped
    problems = backend.check(with_services)
    assert any("services need busybox" in p and "busybox-static" in p for p in problems), problems
    assert any("debug.keep_failed need busybox" in p for p in backend.check(held_job("keep_failed", 60)))
    with pytest.raises(BackendRejected, match="busybox-static"):
        backend.submit(with_services)
    assert backend.records.load(with_services.job_id) is None


# --- through the portal ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_roles_service_answers_through_the_endpoint_proxy_and_again_after_it_was_killed(
    local_cluster, stop_all, owner, asgi_server
):
    from jobs import services as job_services
    from jobs import workers as job_workers
    from testing import echo_server
    from testing.wait import wait_until
    from testing.web import fetch, wait_answering

    # The service is the test's web app (it answers with what it was sent), which the sandbox shows it.
    local_cluster.settings = {**local_cluster.settings, "sandbox_read_only": [str(Path(echo_server.__file__).parent)]}
    local_cluster.save(update_fields=["settings"])
    web = {"name": "web", "command": f"exec {PY} {echo_server.__file__}", "port": 8000}
    spec = {
        "name": "with-a-service",
        "framework": "batch",
        "command": "sleep 600",
        "roles": {"main": {"cpu": "250m", "memory": "256Mi", "services": [web]}},
    }
    job = job_services.job_submit(user=owner, data=spec)
    backend = local_cluster.backend()

    def endpoint() -> str:
        job_workers.cluster_sync(local_cluster)
        return job.tasks.get().endpoints.get("web", "")

    address = wait_until(endpoint, 30, "the service's endpoint", every=0.1)
    assert address.startswith("127.0.0.1:") and address != "127.0.0.1:8000"
    path = f"/endpoints/{job.public_id}/main-0/web/"
    assert json.loads(wait_answering(asgi_server.port, path + "echo?n=1", owner))["path"] == path + "echo?n=1"

    services = backend.records.task_dir(job.public_id, "main-0") / "run" / "services"
    pid = int((services / "web.pid").read_text())
    record = backend.records.load(job.public_id)["tasks"]["main-0"]
    task = json.loads((services.parent.parent / "child.json").read_text())["pid"]
    os.kill(host_pid(task, pid) if record.get("sandboxed") else pid, signal.SIGKILL)

    wait_until(lambda: (services / "web.restarts").exists(), 30, "the service's restart", every=0.1)
    assert json.loads(wait_answering(asgi_server.port, path + "echo?n=2", owner))["path"] == path + "echo?n=2"
    assert int((services / "web.pid").read_text()) != pid
    job_workers.cluster_sync(local_cluster)
    assert job.tasks.get().message == "services restarted: web 1 time"
    assert fetch(asgi_server.port, path + "echo")[0] == 401  # not without a user who may see the job
