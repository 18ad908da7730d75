"""An interactive shell in a running task: a PTY, the task's recorded environment, its working directory."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from clusters.backends.local.proc import kill_group

# Run before the shell: make the PTY its controlling terminal (job control, Ctrl-C), then become the shell.
# A fork in the (threaded) portal process would be unsafe, so this small exec does it instead.
_TAKE_TTY = "import fcntl,os,sys,termios;fcntl.ioctl(0,termios.TIOCSCTTY,0);os.execvp(sys.argv[1],sys.argv[1:])"


class PtyShell:
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
        self._registry = registry / f"{self._proc.pid}" if registry else None
        if self._registry:
            # Stopping the job ends its shells too: the backend finds them here.
            self._registry.parent.mkdir(parents=True, exist_ok=True)
            self._registry.write_text(str(self._proc.pid))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def exit_code(self) -> int | None:
        """The shell's exit status once it has ended (negative: killed by that signal)."""
        return self._proc.poll()

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
        kill_group(self._proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 1.0
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        kill_group(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        os.close(self._fd)
        self._fd = None
        if self._registry:
            try:
                self._registry.unlink()
            except FileNotFoundError:
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
