"""Task isolation tried as the attack: a script a task runs to go after what it must not reach, and its verdict.

The ``portal_layout`` fixture (in ``testing.plugin``) lays out var/ as the embedded defaults do, with canaries
in the portal's secrets; ``attack_targets`` lists what a task must not read, list, write or kill;
``ATTACK`` tries it all from inside the task and prints a report; ``assert_nothing_leaked`` judges it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from clusters.backends.local import sandbox

CANARY = "easyai-isolation-canary-5d1f"

# Why this host cannot sandbox tasks ("" when it can), and the mark of the tests that need it to.
SANDBOX_REFUSED = sandbox.refused("bwrap", sandbox.DEFAULT_USER, sandbox.DEFAULT_USER)
needs_sandbox = pytest.mark.skipif(bool(SANDBOX_REFUSED), reason=f"this host cannot sandbox tasks: {SANDBOX_REFUSED}")

# Run inside a task (or its shell): try everything listed, report what worked as one JSON line.
ATTACK = r"""
import json, os, signal, sys
targets = json.loads(sys.argv[1])
report = {"uid": os.getuid(), "gid": os.getgid(), "read": {}, "list": {}, "write": {}, "kill": {}}
report["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
for path in targets["read"]:
    try:
        with open(path, "rb") as handle:
            report["read"][path] = handle.read(64).decode("latin-1")
    except OSError as exc:
        report["read"][path] = "denied:" + type(exc).__name__
for path in targets["list"]:
    try:
        report["list"][path] = sorted(os.listdir(path))
    except OSError as exc:
        report["list"][path] = "denied:" + type(exc).__name__
for path in targets["write"]:
    try:
        with open(path, "a") as handle:
            handle.write("owned\n")
        report["write"][path] = "written"
    except OSError as exc:
        report["write"][path] = "denied:" + type(exc).__name__
for pid in targets["kill"]:
    try:
        os.kill(pid, signal.SIGKILL)
        report["kill"][str(pid)] = "killed"
    except OSError as exc:
        report["kill"][str(pid)] = "denied:" + type(exc).__name__
environ = []
for pid in report["pids"] + targets["environ_of"]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ.append(handle.read().decode("latin-1"))
    except OSError:
        pass
report["environ"] = "\n".join(environ)
# Said before the last blow: it may end this sandbox, and this process with it.
print("REPORT " + json.dumps(report), flush=True)
if targets.get("kill_all", True) and os.getuid() != 0:  # never as root: unsandboxed, it would end the host's
    try:
        os.kill(-1, signal.SIGKILL)  # everything this user may signal, but itself
    except OSError:
        pass
"""


@pytest.fixture
def portal_layout(settings, tmp_path, monkeypatch):
    """The embedded defaults' layout: var/ holds the secrets, the database, the storage and the backend's state."""
    monkeypatch.setenv("EASYAI_ISOLATION_CANARY", CANARY)  # in the portal's (this process's) environment
    var = tmp_path / "var"
    var.mkdir()
    (var / "secret_key").write_text(f"{CANARY}-secret-key")
    (var / "admin-password.txt").write_text(f"{CANARY}-admin-password")
    (var / "field_key").write_text(f"{CANARY}-field-key")
    (var / "easyai.sqlite3").write_bytes(b"SQLite format 3\x00" + CANARY.encode())
    for name in ("secret_key", "admin-password.txt", "field_key"):
        (var / name).chmod(0o600)
    (var / "easyai.sqlite3").chmod(0o644)  # as SQLite leaves it: readable by every user of the host
    settings.VAR_DIR = var
    settings.EASYAI_STORAGE_ROOT = var / "storage"
    settings.EASYAI_LOCAL_STATE_DIR = var / "local-backend"
    return var


def root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def report_of(text: str) -> dict:
    line = next(line for line in reversed(text.splitlines()) if line.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


def portal_files(var: Path) -> list[str]:
    """Everything of the portal a task must not read: var/ of this layout and of the real checkout, the code,
    the settings and the database the tests run on."""
    from django.db import connection

    found = [str(var / name) for name in ("secret_key", "admin-password.txt", "field_key", "easyai.sqlite3")]
    base = Path(settings.BASE_DIR)
    found += [str(base / "easyai_site" / "settings.py"), str(base / "manage.py")]
    real_var = base / "var"
    found += [str(p) for p in (real_var / "secret_key", real_var / "field_key") if p.exists()]
    database = connection.settings_dict.get("NAME")
    if database and Path(str(database)).is_file():
        found.append(str(database))
    for path in found:
        assert Path(path).read_bytes() is not None  # the portal itself can read each: the attack has a target
    return found


def with_the_toolbox(targets: dict, backend, job_id: str, victim_id: str = "", task: str = "main-0") -> dict:
    """What a task sees of its local backend's state besides: the tools folder (read-only) and its own run folder, on
    the way to them; never another task's run folder, nor a change to the tools."""
    state = backend.state_dir
    var = Path(settings.VAR_DIR)
    targets["list"].update({
        str(var): sorted([state.parent.name, "storage"]),
        str(state.parent): [state.name],
        str(state): ["tasks", "tools"],
        str(state / "tasks"): [job_id],
        str(state / "tasks" / job_id): [task],
        str(state / "tasks" / job_id / task): ["run"],
    })  # fmt: skip
    if victim_id:
        targets["list"][str(state / "tasks" / victim_id)] = None
    targets["write"] += [str(backend.tools_dir / "easyai-task"), str(backend.tools_dir / "bin" / "planted")]
    return targets


def attack_targets(
    var: Path, job_id: str, *, others: list[str], kill: list[int], write: list[str], owner: str = "alice"
) -> dict:
    return {
        "read": [*portal_files(var), *others],
        # Folders a task passes through on the way to its own: what it may find listed there, and no more.
        "list": {
            str(var): ["storage"],
            str(root()): sorted(["data", "notebook", job_id]),
            str(Path(settings.BASE_DIR)): [".venv"] if sys.prefix.startswith(str(settings.BASE_DIR)) else [],
            str(root() / "notebook"): [owner, "public"],
            str(root() / "data"): [owner],
            str(storage.personal_workspace(root(), "bob")): None,  # not there at all
        },
        "write": write,
        "kill": kill,
        "environ_of": [os.getpid(), os.getppid()],
    }


def assert_nothing_leaked(report: dict, targets: dict) -> None:
    assert report["uid"] == sandbox.DEFAULT_USER and report["gid"] == sandbox.DEFAULT_USER
    for path, got in report["read"].items():
        assert got.startswith("denied:"), f"a task read {path}: {got!r}"
    for path, allowed in targets["list"].items():
        got = report["list"][path]
        if allowed is None:
            assert got == "denied:FileNotFoundError", (path, got)
        else:
            assert got == "denied:FileNotFoundError" or set(got) <= set(allowed), (path, got)
    for path, got in report["write"].items():
        assert got.startswith("denied:"), f"a task wrote {path}"
    for pid, got in report["kill"].items():
        assert got.startswith("denied:"), f"a task killed {pid}"
    assert CANARY not in report["environ"]
    assert len(report["pids"]) < 10, report["pids"]  # its own few processes, none of the host's


def other_users_files() -> list[str]:
    bob_workspace = storage.personal_workspace(root(), "bob")
    bob_workspace.mkdir(parents=True, exist_ok=True)
    (bob_workspace / "notes.txt").write_text(f"{CANARY}-bob")
    bob_data = root() / "data" / "bob"
    bob_data.mkdir(parents=True, exist_ok=True)
    (bob_data / "train.csv").write_text(f"{CANARY}-bob-data")
    return [str(bob_workspace / "notes.txt"), str(bob_data / "train.csv")]
