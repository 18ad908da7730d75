"""Task isolation on the local backend: every task in a bubblewrap sandbox, as an unprivileged user.

A task sees what a pod would and nothing else of this host:

- the system's programs and libraries, read-only (``/usr``, ``/etc``, ``/opt``, the lib folders, the Python
  the portal runs on and its virtual environment, and any ``sandbox_read_only`` paths of the cluster);
- its job's storage folders at their real paths (the variables hold them), ``data_dir`` read-only, the
  owner's personal workspace and the public workspace, the admin-defined volumes it names;
- a private ``/tmp``, a ``/dev`` of its own (with ``/dev/nvidia*`` let through when the host has them) and a
  ``/dev/shm`` shared by the tasks of its job only;
- its own processes only (a PID namespace of its own with its own ``/proc``; SysV IPC of its own).

The network namespace stays the host's: the tasks of a job reach each other over loopback as the
operators' environment contract says (``MASTER_ADDR``, ``TF_CONFIG``), and the portal's proxy reaches
their endpoints the same way. The sandbox runs as root and drops to the cluster's ``sandbox_user``
(65534, ``nobody``, by default) with ``setpriv``: no capabilities, no setuid programs
(``no_new_privs``), no supplementary groups. A shell opened in a task joins the same namespaces with
``nsenter`` and drops to the same user.

The task's process tree, as the supervisor sees it: ``bwrap`` (the supervisor's child, whose pid is the
task's) -> ``bwrap`` (pid 1 inside) -> ``setpriv`` -> the wrapper below -> the task's command. The outer
``bwrap`` is started with SIGTERM ignored, so a stop's SIGTERM to the task's process group reaches the
command (which the wrapper gives SIGTERM back) without ending the sandbox before the command has had its
grace period.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clusters.backends.local.proc import proc_stat

DEFAULT_USER = 65534  # nobody / nogroup on Debian
# /sys read-only as in a container: CPU topology (hwloc, OpenMP), NVIDIA's PCI lookups.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys")
PROBE_TIMEOUT_S = 15.0

# Run inside the sandbox as the task's user: SIGTERM back to its default (bwrap was started with it
# ignored); the seccomp filter (argv[1], hex) that keeps it from making user namespaces; the working
# directory made (as the task's user, so a symlink can lead nowhere the task cannot go) and entered; then
# the task's command. Errors read as the supervisor's do outside a sandbox.
WRAPPER = (
    "import ctypes,os,signal,sys\n"
    "signal.signal(signal.SIGTERM,signal.SIG_DFL)\n"
    "rules,cwd,argv=bytes.fromhex(sys.argv[1]),sys.argv[2],sys.argv[3:]\n"
    "class Prog(ctypes.Structure):_fields_=[('len',ctypes.c_ushort),('filter',ctypes.c_char_p)]\n"
    "prog=Prog(len(rules)//8,rules)\n"
    "if ctypes.CDLL(None,use_errno=True).prctl(22,2,ctypes.byref(prog),0,0)!=0:\n"
    " sys.stderr.write(f'easyai: cannot install the sandbox seccomp filter: {os.strerror(ctypes.get_errno())}\\n');sys.exit(126)\n"
    "try:\n"
    " os.makedirs(cwd,exist_ok=True);os.chdir(cwd)\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'easyai: cannot enter the working directory {cwd!r}: {e.strerror or e}\\n');sys.exit(126)\n"
    "try:\n"
    " os.execvp(argv[0],argv)\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'easyai: cannot start {argv[0]!r}: {e.strerror or e}\\n')\n"
    " sys.exit(126 if isinstance(e,PermissionError) else 127)\n"
)

CLONE_NEWUSER = 0x10000000
# (audit arch, unshare, clone, clone3, has the x32 ABI) for x86-64, i386 and arm64.
_ARCHES = ((0xC000003E, 272, 56, 435, True), (0x40000003, 310, 120, 435, False), (0xC00000B7, 97, 220, 435, False))


def seccomp_filter() -> bytes:
    """A classic BPF seccomp program: no new user namespaces (``unshare``/``clone`` with CLONE_NEWUSER refused
    with EPERM; ``clone3``, whose flags a filter cannot read, answers ENOSYS so that libc falls back to
    ``clone``), everything else allowed, as Docker's default profile does for unprivileged containers.

    Without it an unprivileged task could make a user namespace and, in it, mounts of its own: more of the
    kernel to attack, and namespaces a careless ``nsenter`` could be led into.
    """
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    program: list[list] = []  # [code, jump if true (label), jump if false (label), k]
    labels: dict[str, int] = {}

    def op(code: int, k: int = 0, jt: str | None = None) -> None:
        program.append([code, jt, None, k])

    op(ld, 4)  # seccomp_data.arch
    for index, (arch, *_rest) in enumerate(_ARCHES):
        op(jeq, arch, jt=f"arch{index}")
    op(ret, allow)
    for index, (_arch, unshare, clone, clone3, x32) in enumerate(_ARCHES):
        labels[f"arch{index}"] = len(program)
        op(ld, 0)  # seccomp_data.nr
        if x32:
            op(jge, 0x40000000, jt="eperm")  # the x32 ABI: nothing a task needs
        op(jeq, clone3, jt="enosys")
        op(jeq, unshare, jt="flags")
        op(jeq, clone, jt="flags")
        op(ret, allow)
    labels["flags"] = len(program)
    op(ld, 16)  # the low half of args[0]: the flags of unshare and clone
    op(jset, CLONE_NEWUSER, jt="eperm")
    op(ret, allow)
    labels["eperm"] = len(program)
    op(ret, eperm)
    labels["enosys"] = len(program)
    op(ret, enosys)
    code = b""
    for index, (opcode, jt, jf, k) in enumerate(program):
        true = labels[jt] - index - 1 if jt else 0
        false = labels[jf] - index - 1 if jf else 0
        code += struct.pack("<HBBI", opcode, true, false, k)
    return code


SECCOMP_HEX = seccomp_filter().hex()


@dataclass(frozen=True)
class Mount:
    path: str  # the same path inside the sandbox as on the host
    writable: bool


@dataclass(frozen=True)
class Sandbox:
    bwrap: str  # the program (a name on PATH or a path)
    uid: int
    gid: int
    read_only: tuple[str, ...] = ()  # the cluster's extra read-only paths


def find_bwrap(bwrap: str) -> str | None:
    if "/" in bwrap:
        return bwrap if os.path.isfile(bwrap) and os.access(bwrap, os.X_OK) else None
    return shutil.which(bwrap)


def python_paths() -> list[str]:
    """Where the portal's Python lives: tasks run "python" from there (no images on the local backend)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    real = os.path.realpath(sys.executable)
    paths.add(os.path.dirname(os.path.dirname(real)))
    return sorted(p for p in paths if p and p != "/")


def _covered(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def inside(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` (made absolute and normal, no symlinks followed) lies in one of ``roots``."""
    return _covered(os.path.normpath(path), [os.path.normpath(r) for r in roots])


class _Builder:
    def __init__(self) -> None:
        self.args: list[str] = []
        self.made: set[str] = {"/"}  # directories that exist in the sandbox
        self.bound: list[str] = []
        self.read_only: list[str] = []

    def parents(self, path: str) -> None:
        # bwrap would make missing parents 0700 (root's): the task could not get through them.
        parts = Path(path).parts[1:-1]
        current = ""
        for part in parts:
            current += "/" + part
            if current in self.made or _covered(current, self.bound):
                continue
            self.args += ["--perms", "0755", "--dir", current]
            self.made.add(current)

    def bind(self, kind: str, path: str) -> None:
        read_only = kind in ("--ro-bind", "--ro-bind-try")
        if read_only and _covered(path, self.read_only):
            return  # already there, read-only
        self.parents(path)
        self.args += [kind, path, path]
        self.bound.append(path)
        if read_only:
            self.read_only.append(path)
        self.made.add(path)


def _system(builder: _Builder, extra: Iterable[str]) -> None:
    for path in SYSTEM_PATHS:
        if os.path.islink(path) and os.path.dirname(path) == "/":
            builder.args += ["--symlink", os.readlink(path), path]  # merged /usr: /bin -> usr/bin
            builder.made.add(path)
        elif os.path.isdir(path):
            builder.bind("--ro-bind", path)
    resolv = os.path.realpath("/etc/resolv.conf")
    if not _covered(resolv, builder.bound):
        builder.bind("--ro-bind-try", resolv)  # a symlink into /run (systemd-resolved): name lookups still work
    for path in [*python_paths(), *extra]:
        if os.path.exists(path):
            builder.bind("--ro-bind", os.path.normpath(path))


def portal_secret_files() -> list[str]:
    """The portal's own secret files that may lie in a folder a task sees read-only (``/etc/easyai/…``): the
    file named by each ``NAME_FILE`` variable of the portal's environment (SECRET_KEY_FILE, DATABASE_URL_FILE…)
    and EASYAI_SETTINGS_FILE (an LDAP bind password, OIDC secrets). /dev/null is mounted over each (without
    device access, so a task's read is refused)."""
    names = [value for key, value in os.environ.items() if key.endswith("_FILE") and value]
    names.append(os.environ.get("EASYAI_SETTINGS_FILE", ""))
    found = set()
    for name in names:
        path = os.path.realpath(os.path.expanduser(name)) if name else ""
        if path.startswith("/") and os.path.isfile(path):
            found.add(path)
    return sorted(found)


def task_argv(
    sandbox: Sandbox,
    argv: list[str],
    *,
    cwd: str,
    mounts: list[Mount],
    shm: str | Path | None = None,
) -> list[str]:
    """``argv`` run in a sandbox seeing ``mounts`` (and the system read-only), in ``cwd``, as the sandbox's user."""
    bwrap = find_bwrap(sandbox.bwrap) or sandbox.bwrap
    builder = _Builder()
    # The private /tmp first: whatever else lies under /tmp is mounted on top of it, not hidden by it.
    for tmp in ("/tmp", "/var/tmp"):
        builder.parents(tmp)
        builder.args += ["--perms", "1777", "--tmpfs", tmp]
        builder.made.add(tmp)
    _system(builder, sandbox.read_only)
    for path in portal_secret_files():
        if _covered(path, builder.bound):
            builder.args += ["--ro-bind", "/dev/null", path]  # in a folder the task sees (/etc): masked
    builder.args += ["--proc", "/proc", "--dev", "/dev"]
    builder.made.update({"/proc", "/dev"})
    for device in sorted(glob.glob("/dev/nvidia*")):
        builder.args += ["--dev-bind", device, device]  # CUDA_VISIBLE_DEVICES chooses among them
    if shm:
        builder.args += ["--bind", str(shm), "/dev/shm"]
    else:
        builder.args += ["--perms", "1777", "--tmpfs", "/dev/shm"]
    # Shallower first, so that a job's folder inside a workspace lands on top of it; read-only last at a depth.
    for mount in sorted(mounts, key=lambda m: (m.path.count("/"), m.path)):
        builder.bind("--bind-try" if mount.writable else "--ro-bind-try", mount.path)
    return [
        bwrap,
        *builder.args,
        "--remount-ro",
        "/",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--",
        *drop_argv(sandbox, argv, cwd),
    ]


def drop_argv(sandbox: Sandbox, argv: list[str], cwd: str) -> list[str]:
    """``argv`` as the sandbox's user, with no capabilities and no way back to them, in ``cwd``."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={sandbox.uid}",
        f"--regid={sandbox.gid}",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--",
        sys.executable,
        "-I",
        "-S",
        "-c",
        WRAPPER,
        SECCOMP_HEX,
        cwd,
        *argv,
    ]


def join_argv(sandbox: Sandbox, argv: list[str], pid: int, cwd: str) -> list[str]:
    """``argv`` in the sandbox of the process ``pid`` (its mounts, processes and IPC), as the sandbox's user."""
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, f"--target={pid}", "--mount", "--pid", "--ipc", "--", *drop_argv(sandbox, argv, cwd)]


def member(outer_pid: int) -> int | None:
    """The sandbox's pid 1 (bwrap's, root's) once the sandbox whose outer bwrap is ``outer_pid`` is set up.

    A shell joins pid 1's namespaces, never the task's own processes': a task may make namespaces of its own
    (an unprivileged user namespace, and a mount namespace in it), and a shell that joined one of those
    would run the programs the task put there, as root, before it drops to the sandbox's user. Pid 1 is not
    the task's to change, and it forks the task's command only after every mount is in place: once it has
    a child, the sandbox is finished.
    """
    for pid in _children(outer_pid):
        if _children(pid):
            return pid
    return None


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat.ppid == parent and stat.state not in ("Z", "X"):
                found.append(stat.pid)
    return found


def signal_of(exit_code: int) -> int | None:
    """bwrap reports a command killed by a signal as 128 + the signal, as shells do."""
    return exit_code - 128 if 128 < exit_code < 128 + 65 else None


@functools.cache
def refused(bwrap: str, uid: int, gid: int) -> str:
    """Why this host cannot sandbox tasks ("" when it can); asked once per process and setting."""
    if os.geteuid() != 0:
        return "the portal does not run as root, and running tasks as another user needs it"
    if find_bwrap(bwrap) is None:
        return f"bubblewrap is not installed ({bwrap!r} not found; Debian package bubblewrap)"
    missing = [tool for tool in ("setpriv", "nsenter") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not found (util-linux)"
    sandbox = Sandbox(bwrap, uid, gid)
    with tempfile.TemporaryDirectory(prefix="easyai-sandbox-") as directory:
        os.chown(directory, uid, gid)
        # Succeeds only as the sandbox's user, in a PID namespace of its own, writing where it was let.
        check = ["/bin/sh", "-c", f'[ "$(id -u)" = {uid} ] && [ "$$" -lt 10 ] && touch probe']
        argv = task_argv(sandbox, check, cwd=directory, mounts=[Mount(directory, True)])
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap failed: {exc}"
        if result.returncode != 0 or not os.path.exists(os.path.join(directory, "probe")):
            why = (result.stderr or "").strip().splitlines()
            return f"bubblewrap could not make a sandbox here: {why[-1] if why else f'exit code {result.returncode}'}"
    return ""


def give(path: Path, uid: int, gid: int) -> None:
    """Make a folder and everything under it the sandbox user's, never following a symlink.

    fwalk works on directory descriptors: a task that swaps a folder for a symlink meanwhile (it may run
    in the same workspace) cannot make this change anything outside the folder.
    """
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    if not _is_dir(top.st_mode):
        return
    if (top.st_uid, top.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    for _root, dirs, files, root_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            try:
                stat = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                if (stat.st_uid, stat.st_gid) != (uid, gid):
                    os.chown(name, uid, gid, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue


def _is_dir(mode: int) -> bool:
    import stat

    return stat.S_ISDIR(mode)
