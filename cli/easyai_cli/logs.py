"""logs: a task's log over HTTP, or followed live through the log websocket."""

from __future__ import annotations

import argparse
import sys
from collections import deque
from typing import BinaryIO
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed

from easyai_cli.client import CLIError, Portal
from easyai_cli.context import Context
from easyai_cli.jobs import job_path, resolve_job
from easyai_cli.ws import closed_message, control, open_socket

PAGE = 1 << 20


def pick_task(portal: Portal, job_id: str, task: str | None) -> tuple[str, dict]:
    """The named task, or the job's first one (the master, chief or launcher where there is one)."""
    job = portal.get(job_path(job_id), what=f"job {job_id}")
    names = [t["name"] for t in job.get("tasks", [])]
    if task:
        if task not in names:
            raise CLIError(f"job {job_id} has no task {task!r}; its tasks: {', '.join(names) or '(none)'}")
        return task, job
    if not names:
        raise CLIError(f"job {job_id} has no tasks")
    return names[0], job


def log_path(job_id: str, task: str, suffix: str = "") -> str:
    return job_path(job_id, f"tasks/{quote(task, safe='')}/log/{suffix}")


class _Tail:
    """The last ``lines`` lines of a stream of chunks, holding no more than those lines in memory."""

    def __init__(self, lines: int):
        self.lines: deque[bytes] = deque(maxlen=lines)
        self.partial = b""

    def feed(self, chunk: bytes) -> None:
        parts = (self.partial + chunk).split(b"\n")
        self.partial = parts.pop()
        self.lines.extend(part + b"\n" for part in parts)

    def result(self) -> bytes:
        if self.partial:
            self.lines.append(self.partial)
        return b"".join(self.lines)


def logs(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    task, _job = pick_task(portal, job_id, args.task)
    return print_log(portal, job_id, task, follow_it=args.follow, tail_lines=args.tail)


def print_log(portal: Portal, job_id: str, task: str, *, follow_it: bool, tail_lines: int) -> int:
    """The task's log on stdout: all of it, or its last ``tail_lines`` lines (when 0 or more); followed live
    until the task ends with ``follow_it``."""
    out: BinaryIO = sys.stdout.buffer
    if follow_it:
        # The socket sends the tail itself (?tail=N) or the whole log from the start (?offset=0).
        params = {"tail": tail_lines} if tail_lines >= 0 else {"offset": 0}
        return follow(portal, job_id, task, params, out)
    response = portal.request(
        "GET",
        log_path(job_id, task, "download/"),
        stream=True,
        headers={"Accept": "text/plain"},
        what=f"job {job_id} task {task}",
    )
    tail = _Tail(tail_lines) if tail_lines >= 0 else None
    with response:
        for chunk in response.iter_content(PAGE):
            if tail is not None:
                tail.feed(chunk)
            else:
                out.write(chunk)
                out.flush()
    if tail is not None:
        out.write(tail.result())
        out.flush()
    return 0


def follow(portal: Portal, job_id: str, task: str, params: dict[str, int], out: BinaryIO) -> int:
    """Relay log frames until the end frame. The exit code is 0 whatever the task's outcome (printed on stderr)."""
    what = f"job {job_id} task {task}"
    socket = open_socket(
        portal, f"ws/jobs/{quote(job_id, safe='')}/tasks/{quote(task, safe='')}/log/", params, what=what
    )
    refusal = ""
    with socket:
        while True:
            try:
                message = socket.recv()
            except ConnectionClosed as exc:
                # A refusal comes as an error frame (the whole reason), then a 4xxx close.
                raise CLIError(f"{what}: {refusal}" if refusal else closed_message(exc, what)) from None
            frame = control(message)
            if frame is None:
                if isinstance(message, bytes):  # tolerate raw data frames
                    out.write(message)
                    out.flush()
                continue
            kind = frame.get("type")
            if kind == "log":
                data = frame.get("data") or ""
                out.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data))
                out.flush()
            elif kind == "end":
                state = frame.get("state") or "ended"
                code = frame.get("exit_code")
                print(f"[{task} {state}{f', exit code {code}' if code is not None else ''}]", file=sys.stderr)
                return 0
            elif kind == "error":
                refusal = str(frame.get("reason") or frame.get("message") or "the portal reported an error")
