"""Small helpers over /proc and signals, shared by the backend and the supervisor (stdlib only).

A pid alone does not name a process for long: it is reused once the process is
reaped. Every pid we keep is paired with its start time (field 22 of
/proc/<pid>/stat, in clock ticks since boot), and a process counts as ours only
while both match.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    pgrp: int
    session: int
    starttime: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return ProcStat(pid, rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]))
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat.starttime if stat else None


def is_alive(pid: int | None, starttime: int | None = None) -> bool:
    """True while the process runs (a zombie has ended) and is the one that started at ``starttime``."""
    if not pid:
        return False
    stat = proc_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return False
    return starttime is None or stat.starttime == starttime


def session_members(session: int, *, also_children_of: int | None = None) -> list[ProcStat]:
    """Live processes of a session (and children of a given parent that left it with setsid)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat is None or stat.state in ("Z", "X"):
            continue
        if stat.session == session or (also_children_of is not None and stat.ppid == also_children_of):
            found.append(stat)
    return found


def kill_group(pgid: int | None, sig: int) -> None:
    if not pgid or pgid <= 1:
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pid(pid: int | None, sig: int) -> None:
    if not pid or pid <= 1:
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_session(session: int | None, sig: int = signal.SIGKILL, *, spare: int | None = None) -> int:
    """Signal every live process of a session except ``spare``; how many were signalled."""
    if not session or session <= 1:
        return 0
    count = 0
    for stat in session_members(session):
        if stat.pid != spare and stat.pid != os.getpid():
            kill_pid(stat.pid, sig)
            count += 1
    return count


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Readers see the old file or the new one, never half of it: write aside, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        # Only written through write_json_atomic, so a torn file means someone else wrote it: treat as absent.
        return None


def exit_code_of(si_code: int, si_status: int) -> tuple[int, int | None]:
    """(exit code, signal) from waitid's answer; a signal death counts as 128 + signal, as shells do."""
    if si_code == os.CLD_EXITED:
        return si_status, None
    return 128 + si_status, si_status
