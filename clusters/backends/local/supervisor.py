"""One task's supervisor: ``python -m clusters.backends.local.supervisor <task-dir>``.

The backend launches it detached (through a throw-away ``sh`` whose child it
is, so the worker never has to reap it); it outlives the worker and the portal.
It reads ``spec.json`` (argv, cwd, env, log), starts the task in a process
group of its own with stdout and stderr appended to the task's log, waits, and
writes the exit code to ``exit.json`` atomically. The files it writes, in
order, are the whole contract with the backend:

- ``supervisor.json`` {pid, starttime}: written first, so a backend that
  crashed before recording the pid still finds it;
- ``child.json`` {pid, starttime, started_at}: the task runs; its pid is also
  its process group, the target of a stop;
- ``exit.json`` {exit_code, signal, finished_at}: the task and every process
  it left behind are gone.

A ``stop`` file in the task dir asks it to stop a task it has not started yet
(the backend writes it before signalling, so a stop racing the start is never
lost). Only the standard library is used: it starts once per task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clusters.backends.local.proc import (
    exit_code_of,
    kill_group,
    kill_pid,
    read_json,
    session_members,
    start_time,
    write_json_atomic,
)

PR_SET_CHILD_SUBREAPER = 36
SWEEP_LIMIT_S = 10.0


def _become_subreaper() -> bool:
    """Orphans of the task then come to us instead of init, so we can reap them and know when none are left."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _sweep(me: int, main_pid: int, subreaper: bool) -> None:
    """Kill and reap everything the task left behind, as a container runtime does when its main process ends."""
    # The main process is a zombie until reaped below, so its process group id cannot be reused yet.
    kill_group(main_pid, signal.SIGKILL)
    deadline = time.monotonic() + SWEEP_LIMIT_S
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            # As subreaper every live descendant is a child of ours or of one of our children: none are left.
            if subreaper:
                return
            pid = 0
        if pid:
            continue
        others = [s for s in session_members(me, also_children_of=me) if s.pid != me]
        if not others or time.monotonic() > deadline:
            return
        for stat in others:
            kill_pid(stat.pid, signal.SIGKILL)
        time.sleep(0.01)


def _finish(task_dir: Path, exit_code: int, sig: int | None, finished_at: float) -> None:
    write_json_atomic(task_dir / "exit.json", {"exit_code": exit_code, "signal": sig, "finished_at": finished_at})


def main(task_dir: Path) -> int:
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    subreaper = _become_subreaper()
    me = os.getpid()
    write_json_atomic(task_dir / "supervisor.json", {"pid": me, "starttime": start_time(me)})
    spec = read_json(task_dir / "spec.json")
    if not spec:
        _finish(task_dir, 127, None, time.time())
        return 1
    log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    if (task_dir / "stop").exists():
        _finish(task_dir, 128 + signal.SIGTERM, signal.SIGTERM, time.time())
        return 0

    started_at = time.time()
    sandboxed = bool(spec.get("sandboxed"))
    if sandboxed:
        # bwrap inherits SIGTERM ignored and keeps the sandbox up while the task, which gets SIGTERM back
        # (sandbox.WRAPPER), uses its grace period; SIGKILL still ends the whole sandbox at once.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        child = subprocess.Popen(
            spec["argv"],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            process_group=0,
            close_fds=True,
        )
    except OSError as exc:
        os.write(log_fd, f"easyai: cannot start {spec['argv'][0]!r}: {exc.strerror or exc}\n".encode())
        _finish(task_dir, 126 if isinstance(exc, PermissionError) else 127, None, time.time())
        return 0
    finally:
        if sandboxed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    write_json_atomic(
        task_dir / "child.json", {"pid": child.pid, "starttime": start_time(child.pid), "started_at": started_at}
    )
    # The backend writes "stop" and then looks for child.json; we write child.json and then look for "stop".
    # Whichever order the two happen in, one side signals the task.
    if (task_dir / "stop").exists():
        kill_group(child.pid, signal.SIGTERM)

    info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    finished_at = time.time()
    exit_code, sig = exit_code_of(info.si_code, info.si_status)
    if sandboxed and sig is None and 128 < exit_code < 128 + 65:
        sig = exit_code - 128  # bwrap exits 128 + the signal that killed the task, as shells do
    _sweep(me, child.pid, subreaper)
    child.returncode = exit_code  # reaped by _sweep; keeps Popen from waiting on it again
    os.close(log_fd)
    _finish(task_dir, exit_code, sig, finished_at)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
