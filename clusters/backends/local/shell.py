"""An interactive shell in a running task (open_shell: a PTY, the task's recorded environment, its working
directory) and one SSH connection into it (open_ssh: the toolbox's ``easyai-sshd`` on a socket); each in the
task's sandbox, or its mount namespace, where it has one. A task held for debugging after its command failed
(observe.task_held) takes both as a running one does."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

from clusters.backends.base import BackendError
from clusters.backends.contract import toolbox
from clusters.backends.local import isolation, sandbox, tools
from clusters.backends.local.observe import task_held, task_runtime
from clusters.backends.local.proc import kill_group, read_json
from clusters.backends.local.records import RUNNING

if TYPE_CHECKING:
    from clusters.backends.local.backend import LocalBackend

SHELL_JOIN_WAIT_S = 5.0  # how long a shell waits for a starting task's read-only data_dir

# Run before the shell: make the PTY its controlling terminal (job control, Ctrl-C), then become the shell.
# A fork in the (threaded) portal process would be unsafe, so this small exec does it instead.
_TAKE_TTY = "import fcntl,os,sys,termios;fcntl.ioctl(0,termios.TIOCSCTTY,0);os.execvp(sys.argv[1],sys.argv[1:])"


class _TaskProgram:
    """A program started in a task for a shell or a connection: registered in the task's ``shells/`` (stopping the
    job ends it too), ended with its whole process group."""

    _proc: subprocess.Popen
    _registry: Path | None

    def _register(self, registry: Path | None) -> None:
        self._registry = registry / f"{self._proc.pid}" if registry else None
        if self._registry:
            # Stopping the job ends its shells and SSH connections too: the backend finds them here.
            self._registry.parent.mkdir(parents=True, exist_ok=True)
            self._registry.write_text(str(self._proc.pid))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def exit_code(self) -> int | None:
        """The program's exit status once it has ended (negative: killed by that signal)."""
        return self._proc.poll()

    def _end(self, first: signal.Signals) -> None:
        """``first`` to the program's group, a second for it to go by itself, then SIGKILL; unregistered."""
        kill_group(self._proc.pid, first)
        deadline = time.monotonic() + 1.0
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        kill_group(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._registry:
            try:
                self._registry.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class PtyShell(_TaskProgram):
    """The ShellSession of the local backend."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, registry: Path | None = None) -> None:
        master, slave = pty.openpty()
        _set_size(master, 24, 80)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _TAKE_TTY, *argv],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._fd: int | None = master
        self._register(registry)

    def read(self, timeout: float = 0.1) -> bytes | None:
        if self._fd is None:
            return None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return None if self._proc.poll() is not None else b""
        try:
            data = os.read(self._fd, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # every slave end is closed: the shell has ended
                return None
            raise
        return data or None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "the shell is closed")
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._fd], [], 5)
            if not writable:
                raise TimeoutError("the shell does not take input")
            written = os.write(self._fd, view)
            view = view[written:]

    def resize(self, rows: int, cols: int) -> None:
        if self._fd is None:
            return
        _set_size(self._fd, rows, cols)
        kill_group(self._proc.pid, signal.SIGWINCH)  # the kernel tells the foreground group; the shell too

    def close(self) -> None:
        if self._fd is None:
            return
        self._end(signal.SIGHUP)
        os.close(self._fd)
        self._fd = None


class SocketStream(_TaskProgram):
    """The StreamSession of the local backend: a program whose standard input and output are one end of a socket
    pair (Dropbear's inetd mode wants a socket there); this object holds the other end."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, registry: Path | None = None) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=theirs,
                stdout=theirs,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock: socket.socket | None = ours
        self._register(registry)

    def read(self, timeout: float = 0.1) -> bytes | None:
        if self._sock is None:
            return None
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return None if self._proc.poll() is not None else b""
        try:
            data = self._sock.recv(65536)
        except ConnectionResetError:
            return None
        return data or None

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise OSError(errno.EBADF, "the connection is closed")
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._sock], [], 5)
            if not writable:
                raise TimeoutError("the SSH server does not take input")
            view = view[self._sock.send(view) :]

    def close(self) -> None:
        if self._sock is None:
            return
        # End of input first: the server ends its session by itself; then its whole group goes.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._end(signal.SIGTERM)
        self._sock.close()
        self._sock = None


def _joinable_task(backend: LocalBackend, job_id: str, task_name: str, what: str) -> tuple[dict, Path]:
    """The task's record and folder when a shell or an SSH connection may join it: it runs, or it holds after its
    command failed; BackendError saying why not otherwise."""
    records = backend.records
    record = records.load(job_id)
    if record is None:
        raise BackendError(f"job {job_id} is not on cluster {backend.name}")
    task = record["tasks"].get(task_name)
    if task is None:
        raise BackendError(f"job {job_id} has no task {task_name}")
    if not task["process"]:
        raise BackendError(f"{task_name} is an MPI rank inside the launcher's mpirun; open a {what} in launcher-0")
    if task_held(records, job_id, task_name) is None and (
        record["status"] != RUNNING or task_runtime(records, job_id, task_name, task).ended
    ):
        raise BackendError(f"task {task_name} of job {job_id} is not running; a {what} opens only in a running task")
    return task, records.task_dir(job_id, task_name)


def _recorded(task_dir: Path) -> tuple[dict[str, str], str]:
    """The task's environment and working directory as its start recorded them."""
    spec = read_json(task_dir / "spec.json") or {}
    return dict(spec.get("env") or {}), spec.get("working_dir") or spec.get("cwd") or "/"


def _joined_argv(
    backend: LocalBackend,
    job_id: str,
    task_name: str,
    task: dict,
    task_dir: Path,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
) -> tuple[list[str], str]:
    """``argv`` where the task runs (its sandbox as its user, its own mount namespace, or plainly), and the
    directory to start it in."""
    if task.get("sandboxed"):
        box = backend.sandbox()
        if box is None:
            raise BackendError(f"cluster {backend.name} can no longer make sandboxes: {backend.isolation_problem()}")
        deadline = time.monotonic() + SHELL_JOIN_WAIT_S
        while True:
            child = read_json(task_dir / "child.json") or {}
            target = sandbox.member(child["pid"]) if child.get("pid") else None
            if target:
                break
            if time.monotonic() > deadline:
                raise BackendError(f"task {task_name} of job {job_id} is still starting; try again")
            time.sleep(0.02)
        return sandbox.join_argv(box, argv, target, cwd), "/"
    if task.get("own_mounts"):
        # Join the task's mount namespace only once its data_dir is read-only there, never before.
        deadline = time.monotonic() + SHELL_JOIN_WAIT_S
        while True:
            child = read_json(task_dir / "child.json") or {}
            if child.get("pid") and isolation.readonly_in_place(child["pid"], env.get("data_dir", "")):
                break
            if time.monotonic() > deadline:
                raise BackendError(f"task {task_name} of job {job_id} is still starting; try again")
            time.sleep(0.02)
        return isolation.join_argv(argv, child["pid"]), cwd
    return argv, cwd


def open_shell(backend: LocalBackend, job_id: str, task_name: str, command: list[str] | None = None) -> PtyShell:
    """A shell in a running (or held) task of the job, as the task would run it (BackendError saying why when it
    cannot)."""
    task, task_dir = _joinable_task(backend, job_id, task_name, "shell")
    env, cwd = _recorded(task_dir)
    env.setdefault("TERM", "xterm-256color")
    if env.get(toolbox.TOOLS):
        # As in the task under its wrapper: the static tools after the task's own programs.
        env["PATH"] = ":".join(filter(None, (env.get("PATH", ""), f"{env[toolbox.TOOLS]}/bin")))
    if task.get("sandboxed"):
        # No rcfile: the sandbox shows nothing of the task's folder here, and HOME is the owner's workspace.
        argv = (
            list(command)
            if command
            else ["bash", "-i"]
            if shutil.which("bash", path=env.get("PATH"))
            else ["/bin/sh", "-i"]
        )
    elif command:
        argv = list(command)
    elif shutil.which("bash", path=env.get("PATH")):
        # A login-like shell that keeps the task's PATH: /etc/profile would put the system's first.
        rc = task_dir / "shellrc"
        rc.write_text(
            "[ -f /etc/profile ] && . /etc/profile\n"
            '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n'
            f"export PATH={_sh_quote(env.get('PATH', ''))}\n"
            f"cd {_sh_quote(cwd)}\n"
        )
        argv = ["bash", "--rcfile", str(rc), "-i"]
    else:
        argv = ["/bin/sh", "-i"]
    argv, start_in = _joined_argv(backend, job_id, task_name, task, task_dir, argv, cwd, env)
    return PtyShell(argv, env, start_in, registry=task_dir / "shells")


def open_ssh(backend: LocalBackend, job_id: str, task_name: str, keys: list[str]) -> SocketStream:
    """One SSH connection into a running (or held) task, as its user, accepting only ``keys``: the toolbox's
    ``easyai-sshd`` on a socket, where a shell would run (BackendError saying why when it cannot)."""
    if not tools.can_ssh():
        raise BackendError(f"cluster {backend.name} cannot serve SSH: this host lacks " + "; ".join(tools.missing()))
    lines = [line.strip() for line in keys if line.strip()]
    if not lines or any("\n" in line or "\r" in line for line in lines):
        raise BackendError("an SSH connection needs at least one public key, each one line")
    task, task_dir = _joinable_task(backend, job_id, task_name, "SSH connection")
    tools.prepare(backend.tools_dir)
    env, cwd = _recorded(task_dir)
    env[toolbox.TOOLS] = str(backend.tools_dir)
    env[toolbox.SSH_KEYS] = "\n".join(lines)
    argv, start_in = _joined_argv(
        backend, job_id, task_name, task, task_dir, toolbox.sshd_argv(str(backend.tools_dir)), cwd, env
    )
    return SocketStream(argv, env, start_in, registry=task_dir / "shells")


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
