"""The log and shell websockets, through a real ASGI server and a real websocket client, on real local jobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from websockets.sync.client import connect

from clusters.backends.contract import storage
from clusters.models import Cluster
from conftest import token_key_for
from jobs import workers
from jobs.models import Job, ShellSession
from jobs.tests.conftest import GATED, log_path
from testing.sockets import Terminal, log_text, open_socket, read_until_closed
from testing.wait import wait_until

pytestmark = pytest.mark.slow

# A task that prints a numbered line every 50 ms for about 3 s.
COUNTER = 'for i in $(seq 1 60); do echo "line $i"; sleep 0.05; done'


def running(command: str) -> bool:
    """Whether a process with this command line runs on this host (a sandboxed task's processes are seen too)."""
    wanted = command.replace(" ", "\0").encode() + b"\0"
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == wanted:
                return True
        except OSError:
            pass
    return False


def finish(job: Job, cluster: Cluster) -> Job:
    def final() -> Job | None:
        workers.cluster_sync(cluster)
        fresh = Job.objects.get(pk=job.pk)
        return fresh if fresh.is_final else None

    return wait_until(final, what=f"{job.public_id} to end")


def numbered(last: int, first: int = 1) -> str:
    return "".join(f"line {i}\n" for i in range(first, last + 1))


# --- the log --------------------------------------------------------------------------------------------


def test_log_follows_a_running_task_and_resumes_from_its_offset_after_a_reconnect(asgi_server, run_job, owner):
    job = run_job(owner, COUNTER)
    path = log_path(job, "main-0")
    wait_until(lambda: path.exists() and path.read_text().count("\n") >= 5, what="the first lines")
    lines_at_connect = path.read_text().count("\n")

    received = ""
    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/", owner) as ws:
        start = json.loads(ws.recv(timeout=10))
        assert start["type"] == "start" and start["offset"] == 0  # fewer than 1,000 lines: all of them
        offset = start["offset"]
        while received.count("\n") < lines_at_connect + 10:  # lines written after connecting, live
            frame = json.loads(ws.recv(timeout=10))
            assert frame["type"] == "log", frame
            assert frame["offset"] == offset + len(frame["data"].encode())
            received += frame["data"]
            offset = frame["offset"]
    # Closed mid-stream: the task goes on writing meanwhile.
    assert offset < 60 * len("line 60\n"), "the task ended before the reconnect: nothing was tested"
    wait_until(lambda: path.stat().st_size > offset, what="lines written while no socket was open")

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/?offset={offset}", owner) as ws:
        frames, code, _ = read_until_closed(ws)
    assert frames[0] == {"type": "start", "offset": offset, "task": "main-0", "state": frames[0]["state"]}
    received += log_text(frames)

    assert received == numbered(60)  # every line once, in order, across the reconnect
    assert frames[-1] == {"type": "end", "state": "succeeded", "exit_code": 0, "reason": ""}
    assert code == 1000


def test_log_of_a_finished_task_is_sent_whole_then_its_end(asgi_server, run_job, local_cluster, mate, owner):
    job = run_job(owner, "echo one; echo two; echo 'trois, quatre €'; exit 3")
    finish(job, local_cluster)

    # A team-mate may read logs; a token in the query string works as well as the header.
    with connect(
        f"{asgi_server.ws_url}/ws/jobs/{job.public_id}/tasks/main-0/log/?token={token_key_for(mate)}",
        origin=asgi_server.http_url,
    ) as ws:
        frames, code, _ = read_until_closed(ws)
    assert frames[0]["type"] == "start" and frames[0]["state"] == "failed"
    assert log_text(frames) == "one\ntwo\ntrois, quatre €\n"
    assert frames[-1]["type"] == "end" and frames[-1]["state"] == "failed" and frames[-1]["exit_code"] == 3
    assert code == 1000


def test_log_tail_starts_at_the_last_lines_and_offset_at_the_byte(asgi_server, run_job, local_cluster, owner):
    job = run_job(owner, "seq 1 1500")
    finish(job, local_cluster)
    whole = "".join(f"{i}\n" for i in range(1, 1501))

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/", owner) as ws:
        frames, _, _ = read_until_closed(ws)
    assert log_text(frames) == "".join(f"{i}\n" for i in range(501, 1501))  # the last 1,000 lines
    assert frames[0]["offset"] == len(whole) - len(log_text(frames))

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/?offset=4", owner) as ws:
        frames, _, _ = read_until_closed(ws)
    assert log_text(frames) == whole[4:]
    assert frames[-2]["offset"] == len(whole)


@pytest.mark.parametrize(
    ("who", "path", "code", "reason"),
    [
        ("owner", "/ws/jobs/{id}/tasks/main-7/log/", 4404, "has no task 'main-7'; its tasks: main-0"),
        ("owner", "/ws/jobs/{id}/tasks/nonsense/log/", 4404, "has no task 'nonsense'"),
        ("owner", "/ws/jobs/j-00000000/tasks/main-0/log/", 4404, "No job j-00000000"),
        ("outsider", "/ws/jobs/{id}/tasks/main-0/log/", 4404, "No job {id} that you may see"),
        (None, "/ws/jobs/{id}/tasks/main-0/log/", 4401, "Sign in, or present an API token"),
        ("owner", "/ws/jobs/{id}/tasks/main-0/log/?offset=-5", 4400, "offset must be a byte offset"),
    ],
)
def test_log_socket_refuses_with_a_code_and_a_reason(asgi_server, run_job, people, who, path, code, reason):
    job = run_job(people["owner"], "echo hidden")
    with open_socket(asgi_server, path.format(id=job.public_id), people.get(who)) as ws:
        frames, close_code, close_reason = read_until_closed(ws)
    assert close_code == code
    assert frames == [{"type": "error", "reason": frames[0]["reason"]}]  # nothing of the log before the refusal
    assert reason.format(id=job.public_id) in frames[0]["reason"]
    assert close_reason and close_reason in frames[0]["reason"]


# --- the shell ------------------------------------------------------------------------------------------


def test_shell_runs_commands_in_the_task_with_its_rank_and_working_dir(
    asgi_server, run_job, owner, tmp_path, local_cluster
):
    # In the owner's workspace: a task sees nothing of the host outside what a pod would mount.
    work = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username) / "work dir"
    job = run_job(
        owner,
        GATED,
        framework="pytorch",
        working_dir=str(work),
        roles={
            "master": {"replicas": 1, "cpu": "250m", "memory": "128Mi"},
            "worker": {"replicas": 1, "cpu": "250m", "memory": "128Mi"},
        },
    )
    wait_until(lambda: log_path(job, "worker-0").exists(), what="the task to start")

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/worker-0/shell/", owner) as ws:
        term = Terminal(ws)
        term.type("echo $RANK; pwd\r")
        # The answer: a line of digits (the typed line shows "$RANK", not digits), then the directory.
        answer = term.expect(rb"[\r\n](\d+)\r\n(/[^\r\n]*)\r\n")
        assert answer.group(1) == b"1"  # worker-0 of a PyTorch job is rank 1
        assert answer.group(2).decode() == str(work)

        ws.send(json.dumps({"type": "resize", "rows": 33, "cols": 101}))
        term.type("stty size\r")
        term.expect(rb"[\r\n]33 101\r\n")

        sleeper = f"sleep 30.{os.getpid()}"  # a command line of this test's own, to find among the host's processes
        term.type(f"{sleeper}\r")
        wait_until(lambda: running(sleeper), what=f"{sleeper!r} to run in the shell")
        term.type("\x03")  # Ctrl-C ends the foreground command, not the shell
        term.type("echo after-$((40+2))\r")
        term.expect(rb"after-42", timeout=5)

        term.type("printf '\\xe2\\x82\\xac\\x00\\xff\\n'\r")  # bytes that are not all text arrive unchanged
        term.expect(b"\xe2\x82\xac\x00\xff")

        audit = ShellSession.objects.get(job=job)
        assert (audit.username, audit.task, audit.client, audit.closed_at) == (
            owner.username,
            "worker-0",
            "127.0.0.1",
            None,
        )

        term.type("exit 3\r")
        frames, code, _ = read_until_closed(ws)
    assert {"type": "exit", "code": 3} in term.control + [f for f in frames if isinstance(f, dict)]
    assert code == 1000
    audit.refresh_from_db()
    assert audit.closed_at is not None and audit.closed_at >= audit.opened_at
    assert audit.exit_code == 3
    (storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "share_dir") / "go").touch()


def test_shell_is_refused_to_outsiders_and_team_mates_and_audited_for_team_admins(asgi_server, run_job, people):
    job = run_job(people["owner"], GATED)
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    path = f"/ws/jobs/{job.public_id}/tasks/main-0/shell/"

    for who, code, reason in [
        ("outsider", 4404, f"No job {job.public_id} that you may see"),
        ("mate", 4403, "Only the job's owner, a team admin or a platform admin may open a shell"),
        (None, 4401, "Sign in"),
    ]:
        with open_socket(asgi_server, path, people.get(who)) as ws:
            frames, close_code, _ = read_until_closed(ws)
        assert close_code == code, who
        assert len(frames) == 1 and reason in frames[0]["reason"], who
    assert not ShellSession.objects.exists()  # a refusal opens nothing

    for who in ("team_admin", "staff"):
        with open_socket(asgi_server, path, people[who]) as ws:
            term = Terminal(ws)
            term.type("echo who-$USER-ok\r")
            term.expect(rb"who-.*-ok\r\n")
        # Closed by the client: the server records the end when it sees the socket go.
        audit = wait_until(
            lambda who=who: ShellSession.objects.filter(username=people[who].username, closed_at__isnull=False).first(),
            what=f"{who}'s session to be closed",
        )
        assert audit.task == "main-0" and audit.closed_at >= audit.opened_at and audit.duration.total_seconds() >= 0
    assert ShellSession.objects.count() == 2


def test_shell_in_a_finished_task_or_a_bad_task_is_refused_with_a_reason(asgi_server, run_job, local_cluster, owner):
    job = run_job(owner, "echo done")
    finish(job, local_cluster)
    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/shell/", owner) as ws:
        frames, code, _ = read_until_closed(ws)
    assert code == 4409
    assert frames == [
        {"type": "error", "reason": "Task main-0 has ended (succeeded); a shell opens only in a running task."}
    ]

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-1/shell/", owner) as ws:
        frames, code, _ = read_until_closed(ws)
    assert code == 4404 and "has no task 'main-1'" in frames[0]["reason"]
    assert not ShellSession.objects.exists()


def test_a_cookie_socket_from_another_site_is_refused_but_a_token_client_needs_no_origin(asgi_server, run_job, local_cluster, owner):
    """The Origin check guards browser sessions (cross-site websocket hijacking); the CLI sends a token and no Origin."""
    job = run_job(owner, "echo checked")
    finish(job, local_cluster)
    path = f"/ws/jobs/{job.public_id}/tasks/main-0/log/"
    with open_socket(asgi_server, path, owner) as ws:
        frames, code, _ = read_until_closed(ws)
    assert "checked" in log_text(frames) and code == 1000
    from django.test import Client

    client = Client()
    client.force_login(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        open_socket(asgi_server, path, origin="http://evil.example", Cookie=cookie)
    with open_socket(asgi_server, path, origin=asgi_server.http_url, Cookie=cookie) as ws:
        frames, code, _ = read_until_closed(ws)
    assert "checked" in log_text(frames) and code == 1000
