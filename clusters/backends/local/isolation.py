"""A read-only data_dir for unsandboxed local tasks, where the OS allows it (the cluster setting ``readonly_data_dir``).

Only for a cluster with ``isolation`` off: a sandboxed task (sandbox.py) always sees data_dir read-only.

The task starts in a mount namespace of its own (``unshare --mount``, private propagation, so nothing
leaks to the host) in which data_dir is bind-mounted onto itself and remounted read-only; then the task's
command is exec'ed, so its pid and process group are the ones the supervisor started. Its children share
the namespace, and a shell opened in the task joins it (``nsenter``). Making a mount namespace needs root
(CAP_SYS_ADMIN); where the OS refuses, a job on such a cluster is refused at submit, saying why.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile

# $1: the directory to make read-only; the rest: the task's command.
_SCRIPT = (
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" '
    '|| { echo "easyai: cannot make data_dir $1 read-only" >&2; exit 126; }; shift; exec "$@"'
)


def readonly_argv(argv: list[str], directory: str) -> list[str]:
    """``argv`` run with ``directory`` read-only, in a mount namespace of its own."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _SCRIPT, "sh", directory, *argv]


def join_argv(argv: list[str], pid: int) -> list[str]:
    """``argv`` run in the mount namespace of the task process ``pid``."""
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, f"--target={pid}", "--mount", "--", *argv]


def readonly_in_place(pid: int, directory: str) -> bool:
    """Whether the task process ``pid`` sees ``directory`` mounted read-only (its start has got that far)."""
    target = os.path.realpath(directory)
    try:
        with open(f"/proc/{pid}/mountinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # mount id, parent id, major:minor, root, mount point (octal escapes), mount options, ...
        if len(fields) > 5 and _unescape(fields[4]) == target and "ro" in fields[5].split(","):
            return True
    return False


def _unescape(path: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as an octal escape (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


@functools.cache
def readonly_refused() -> str:
    """Why this host cannot give a task a read-only data_dir ("" when it can); asked once per process."""
    if os.geteuid() != 0:
        return "the portal does not run as root, and a mount namespace needs it"
    missing = [tool for tool in ("unshare", "nsenter", "mount") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not found (util-linux)"
    with tempfile.TemporaryDirectory(prefix="easyai-ro-") as directory:
        # Succeeds only when the mount worked and a write into it is refused.
        check = ["/bin/sh", "-c", '! touch "$0/probe" 2>/dev/null', directory]
        try:
            result = subprocess.run(readonly_argv(check, directory), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unshare failed: {exc}"
    if result.returncode != 0:
        return f"a read-only bind mount in a mount namespace was refused: {result.stderr.strip() or result.returncode}"
    return ""
