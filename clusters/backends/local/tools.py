"""The local backend's tools folder: what an init container puts into a pod on Kubernetes, made from this host.

``{state_dir}/tools`` holds, readable by every task's user and shown read-only in every sandbox:

- ``busybox`` (Debian's ``busybox-static``) and ``bin/``, a link per applet (``ping``, ``wget``, ``nc``, ``ps``,
  ``top``, ``vi`` ...): ``bin/`` goes on a task's ``PATH`` after its own, so the host's programs come first;
- the toolbox's scripts (``clusters/backends/contract/toolbox.py``): the task wrapper, the SSH server's start
  and its login;
- ``dropbear``, which starts Debian's Dropbear with ``libnss_wrapper`` preloaded (the login it accepts is made
  for each connection), and ``dropbearkey``.

``prepare`` makes or refreshes it (cheap when it is whole); ``missing`` says what this host lacks.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from clusters.backends.contract import toolbox

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NSS_WRAPPER_GLOBS = ("/usr/lib/*/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so")
VERSION = "1"  # bump when the folder's layout changes; a folder of another version is made again


def find_busybox() -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("busybox", path=SBIN_PATH)


def find_nss_wrapper() -> str | None:
    for pattern in NSS_WRAPPER_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def missing() -> list[str]:
    """What this host lacks for the toolbox, each with the Debian package that brings it."""
    lacking = []
    if not find_busybox():
        lacking.append("busybox (Debian's busybox-static): the static tools and the task wrapper")
    if not shutil.which("dropbear", path=SBIN_PATH) or not shutil.which("dropbearkey", path=SBIN_PATH):
        lacking.append("dropbear (Debian's dropbear-bin): SSH into tasks")
    if not find_nss_wrapper():
        lacking.append("libnss_wrapper (Debian's libnss-wrapper): SSH into tasks")
    return lacking


def can_wrap() -> bool:
    """Whether tasks can run under the wrapper (services, holds, the static tools): busybox is here."""
    return find_busybox() is not None


def can_ssh() -> bool:
    return not missing()


def prepare(tools_dir: Path) -> Path:
    """Make the tools folder (or bring it up to date); returns it. Safe when several workers do it at once."""
    stamp = tools_dir / ".version"
    busybox = find_busybox()
    if busybox is None:
        raise FileNotFoundError("busybox is not installed (Debian's busybox-static)")
    if not (stamp.exists() and stamp.read_text() == f"{VERSION} {busybox}\n"):
        (tools_dir / "bin").mkdir(parents=True, exist_ok=True)
        _link(busybox, tools_dir / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet and "/" not in applet:
                _link("../busybox", tools_dir / "bin" / applet)
        dropbearkey = shutil.which("dropbearkey", path=SBIN_PATH)
        if dropbearkey:
            _link(dropbearkey, tools_dir / "dropbearkey")
        dropbear = shutil.which("dropbear", path=SBIN_PATH)
        nss = find_nss_wrapper()
        if dropbear and nss:
            _write(tools_dir / "dropbear", f'#!/bin/sh\nLD_PRELOAD={nss} exec {dropbear} "$@"\n')
        tools_dir.chmod(0o755)
        (tools_dir / "bin").chmod(0o755)
        _write(stamp, f"{VERSION} {busybox}\n", mode=0o644)
    toolbox.install_scripts(tools_dir)
    return tools_dir


def _link(target: str, path: Path) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    part = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        part.unlink()
    except FileNotFoundError:
        pass
    part.symlink_to(target)
    part.replace(path)


def _write(path: Path, text: str, mode: int = 0o755) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(text)
    part.chmod(mode)
    part.replace(path)
