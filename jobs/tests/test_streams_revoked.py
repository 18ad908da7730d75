"""An open log or shell socket closes within seconds once its user may no longer use it (4410).

Through a real ASGI server and a real websocket client on real local jobs, as test_streams does.
"""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from jobs.consumers import CLOSE_REVOKED
from jobs.models import ShellSession
from jobs.tests.conftest import GATED, log_path
from teams import services as team_services
from teams.models import ApiToken
from testing.sockets import Terminal, open_socket, read_until_closed
from testing.wait import wait_until

pytestmark = pytest.mark.slow

RECHECK_S = 0.5


@pytest.fixture(autouse=True)
def _fast_recheck(settings):
    settings.EASYAI_WS_RECHECK_SECONDS = RECHECK_S


def test_a_shell_closes_within_seconds_when_its_share_is_revoked_and_its_shell_ends(
    asgi_server, run_job, owner, outsider
):
    job = run_job(owner, GATED)
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    team_services.object_share(obj=job, grantee=outsider, permission="change")

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/shell/", outsider) as ws:
        term = Terminal(ws)
        term.type("echo granted-$((6*7))\r")
        term.expect(rb"granted-42")
        # The shell keeps running while the share stands: several rechecks pass while this command runs.
        term.type(f"sleep {4 * RECHECK_S}; echo still-$((6*7))\r")
        term.expect(rb"still-42")

        team_services.object_unshare(obj=job, grantee=outsider, permission="change")
        revoked_at = time.monotonic()
        frames, code, reason = read_until_closed(ws, timeout=10)
        closed_after = time.monotonic() - revoked_at

    assert code == CLOSE_REVOKED and "withdrawn" in reason
    assert {"type": "error", "reason": f"Your access to job {job.public_id} was withdrawn."} in frames
    assert closed_after < 3
    # The shell itself ended, and its audit record says when.
    session = wait_until(
        lambda: ShellSession.objects.filter(job=job, username="outsider", closed_at__isnull=False).first(),
        what="the shell session to be closed on the record",
    )
    assert session.closed_at is not None


def test_a_log_socket_closes_within_seconds_when_its_reader_leaves_the_team(asgi_server, run_job, owner, mate, team):
    job = run_job(owner, f"echo started; {GATED}")
    wait_until(lambda: log_path(job, "main-0").exists() and log_path(job, "main-0").read_text(), what="a log line")

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/", mate) as ws:
        start = json.loads(ws.recv(timeout=10))
        assert start["type"] == "start"
        team_services.membership_remove(team=team, username="mate")
        removed_at = time.monotonic()
        frames, code, reason = read_until_closed(ws, timeout=10)
        closed_after = time.monotonic() - removed_at

    assert code == CLOSE_REVOKED
    assert frames[-1] == {"type": "error", "reason": f"Your access to job {job.public_id} was withdrawn."}
    assert closed_after < 3


def test_a_socket_whose_user_keeps_access_stays_open(asgi_server, run_job, owner):
    job = run_job(owner, f"echo started; {GATED}")
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/main-0/log/", owner) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "start"
        deadline = time.monotonic() + 4 * RECHECK_S
        while time.monotonic() < deadline:  # several rechecks: nothing but the log arrives, and no close
            try:
                frame = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
            except TimeoutError:
                break
            assert frame["type"] == "log", frame


def test_a_socket_closes_when_its_token_is_revoked_or_its_session_ends(asgi_server, run_job, owner):
    job = run_job(owner, f"echo started; {GATED}")
    wait_until(lambda: log_path(job, "main-0").exists(), what="the task to start")
    path = f"/ws/jobs/{job.public_id}/tasks/main-0/log/"

    with open_socket(asgi_server, path, owner) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "start"
        token = ApiToken.objects.get(user=owner)
        team_services.token_revoke(user=owner, token_id=token.pk)
        frames, code, _ = read_until_closed(ws, timeout=10)
    assert code == CLOSE_REVOKED and "sign-in ended" in frames[-1]["reason"]

    client = Client()
    client.force_login(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with open_socket(asgi_server, path, origin=asgi_server.http_url, Cookie=cookie) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "start"
        Session.objects.all().delete()  # signed out (everywhere)
        frames, code, _ = read_until_closed(ws, timeout=10)
    assert code == CLOSE_REVOKED and "signed out" in frames[-1]["reason"]
