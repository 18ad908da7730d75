"""exec: a shell in a running task through the shell websocket.

Binary frames carry terminal bytes both ways; JSON text frames carry control:
``{"type": "resize", "rows", "cols"}`` from us, ``{"type": "exit", "code"}``
from the portal when the shell ends.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from easyai_cli.client import CLIError
from easyai_cli.context import Context
from easyai_cli.jobs import resolve_job
from easyai_cli.logs import pick_task
from easyai_cli.ws import closed_message, control, open_socket

# Markers the remote shell prints (see _Output). They are written as octal escapes in what we send, so the
# echo of our own lines can never contain their bytes.
READY = b"\x1eeasyai-ready\x1e"
START = b"\x1eeasyai-start\x1e"
PREAMBLE = "stty -echo 2>/dev/null; PS1=''; PS2=''; printf '\\036easyai-ready\\036\\n'"
PRINT_START = "printf '\\036easyai-start\\036\\n'"
MAX_BEFORE_MARKER = 1 << 20
HANDSHAKE_TRIES = 10
HANDSHAKE_WAIT_S = 1.5


class Shell:
    """The socket's receiving side, run in a thread: data goes to a sink, the exit frame ends it."""

    def __init__(self, socket: ClientConnection, sink: Any, what: str):
        self.socket = socket
        self.sink = sink
        self.what = what
        self.code: int | None = None
        self.error = ""
        self.refusal = ""
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for message in self.socket:
                frame = control(message)
                if frame is None:
                    self.sink(message if isinstance(message, bytes) else message.encode("utf-8"))
                elif frame.get("type") == "exit":
                    code = frame.get("code")
                    self.code = code if isinstance(code, int) else 1
                    break
                elif frame.get("type") == "error":
                    # A refusal (not running, not allowed) is an error frame and then a close; a complaint
                    # about one control frame is an error frame alone, and the shell goes on.
                    self.refusal = str(frame.get("reason") or frame.get("message") or "error")
        except ConnectionClosed as exc:
            self.error = f"{self.what}: {self.refusal}" if self.refusal else closed_message(exc, self.what)
        finally:
            if self.code is None and not self.error:
                self.error = f"{self.what}: " + (self.refusal or "the shell closed without an exit status")
            self.done.set()

    def send(self, data: bytes | str) -> bool:
        try:
            self.socket.send(data)
        except ConnectionClosed:
            return False
        return True

    def resize(self, rows: int, cols: int) -> bool:
        return self.send(json.dumps({"type": "resize", "rows": rows, "cols": cols}))


def exec_(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    task, _job = pick_task(portal, job_id, args.task)
    command = " ".join(args.command or []).strip()
    what = f"job {job_id} task {task}"
    socket = open_socket(portal, f"ws/jobs/{quote(job_id, safe='')}/tasks/{quote(task, safe='')}/shell/", what=what)
    with socket:
        if sys.stdin.isatty() and sys.stdout.isatty():
            code = _interactive(socket, what, command)
        else:
            code = _batch(socket, what, command)
    return code


def _terminal_size() -> tuple[int, int]:
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.lines, size.columns


class _Output:
    """What the shell prints, minus the terminal's own noise.

    The handshake's READY marker tells us the shell reads what we send; the START marker, printed right
    before the command replaces the shell, is where the command's output begins. Everything before START
    (echoed lines, prompts, rc-file chatter, readline's escape sequences) is dropped. For a pipe the
    terminal's CRLF line ends become LF.
    """

    def __init__(self, write: Callable[[bytes], None], *, pipe: bool):
        self.write = write
        self.pipe = pipe
        self.before = b""  # bytes before START, kept only as long as a marker could still be in them
        self.pending_cr = False
        self.eat = b"\r\n"
        self.ready = threading.Event()
        self.started = threading.Event()

    def __call__(self, data: bytes) -> None:
        if not self.started.is_set():
            self.before += data
            if READY in self.before:
                self.ready.set()
            index = self.before.find(START)
            if index < 0:
                if len(self.before) > MAX_BEFORE_MARKER:  # not a shell we understand: show everything from here
                    self.ready.set()
                    self.started.set()
                    data, self.before = self.before, b""
                else:
                    self.before = self.before[-(len(READY) + len(START)) :]  # a marker may be cut by a frame
                    return
            else:
                data = self.before[index + len(START) :]
                self.before = b""
                self.started.set()
        # The marker's own line end, which may come in the next frames.
        while self.eat and data:
            if data[:1] == self.eat[:1]:
                data, self.eat = data[1:], self.eat[1:]
            elif data[:1] == b"\n":  # a bare LF after the marker
                data, self.eat = data[1:], b""
            else:
                self.eat = b""
        if self.pipe:
            if self.pending_cr:
                data = b"\r" + data
                self.pending_cr = False
            if data.endswith(b"\r"):
                data, self.pending_cr = data[:-1], True
            data = data.replace(b"\r\n", b"\n")
        if data:
            self.write(data)

    def close(self) -> None:
        if self.pending_cr:
            self.write(b"\r")


def _handshake(shell: Shell, output: _Output) -> None:
    """Turn echo off and wait for READY, sending the (harmless, repeatable) preamble until the shell answers.

    A line typed before the task's shell has read its rc files may be lost: a program started from a
    .bashrc can read the terminal, and readline may start after it. So the command itself goes in only
    once the shell has shown that it reads what we send.
    """
    for _attempt in range(HANDSHAKE_TRIES):
        if not shell.send(f"{PREAMBLE}\n".encode()):
            return
        if output.ready.wait(HANDSHAKE_WAIT_S) or shell.done.is_set():
            return
    raise CLIError(f"{shell.what}: the shell in the task did not answer")


def _interactive(socket: ClientConnection, what: str, command: str) -> int:
    import termios
    import tty

    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()

    def write(data: bytes) -> None:
        os.write(stdout, data)

    # With CMD, the handshake's noise (echo, prompt) is hidden; without, the terminal shows everything.
    output = _Output(write, pipe=False)
    shell = Shell(socket, output if command else write, what)
    reader = threading.Thread(target=shell.run, daemon=True)
    resized = threading.Event()
    previous_handler = signal.signal(signal.SIGWINCH, lambda *_: resized.set())
    saved = termios.tcgetattr(stdin)
    try:
        tty.setraw(stdin)
        reader.start()
        shell.resize(*_terminal_size())
        if command:
            _handshake(shell, output)
            # Echo back on for the command (it may be interactive: a REPL, top), then run it in place of the shell.
            shell.send(f"stty echo 2>/dev/null; {PRINT_START}; exec /bin/sh -c {shlex.quote(command)}\n".encode())
        while not shell.done.is_set():
            if resized.is_set():
                resized.clear()
                shell.resize(*_terminal_size())
            try:
                ready, _, _ = select.select([stdin], [], [], 0.1)
            except InterruptedError:  # SIGWINCH while waiting
                continue
            if ready:
                data = os.read(stdin, 4096)
                if not data or not shell.send(data):
                    break
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous_handler)
    shell.done.wait(5)
    output.close()
    if shell.code is None:
        print(f"\r\n{shell.error}", file=sys.stderr)
        return 1
    return shell.code


def _batch(socket: ClientConnection, what: str, command: str) -> int:
    """No terminal: run CMD (or the script stdin pipes in) and relay its output; the exit code is the command's."""
    stdout = sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    script = b"" if command else sys.stdin.buffer.read()
    output = _Output(write, pipe=True)
    shell = Shell(socket, output, what)
    reader = threading.Thread(target=shell.run, daemon=True)
    reader.start()
    _handshake(shell, output)
    # The command runs in a non-interactive sh that replaces the task's interactive shell: the exit status is
    # the command's, and no "exit" line or prompt (an interactive bash prints both) mixes into the output.
    if command:
        shell.send(f"{PRINT_START}; exec /bin/sh -c {shlex.quote(command)}\n".encode())
    else:
        # A piped script goes through the terminal as base64 lines: raw, its tabs would meet readline's
        # completion, its control bytes the terminal's signals, and its long lines the 4 KiB line limit.
        # It is sent once START shows that base64 is reading (the terminal is back in line mode by then,
        # so the final ^D is an end of input, not a byte).
        shell.send(f'exec /bin/sh -c "$({PRINT_START} >&2; base64 -d)"\n'.encode())
        while not output.started.wait(0.1):
            if shell.done.is_set():
                break
        encoded = base64.encodebytes(script)  # 76 characters a line
        for start in range(0, len(encoded), 1 << 16):
            if not shell.send(encoded[start : start + (1 << 16)]):
                break
        shell.send(b"\x04")
    shell.done.wait()
    output.close()
    if shell.code is None:
        raise CLIError(shell.error)
    return shell.code
