"""Reading a local job back: what its tasks' files and /proc say (TaskRuntime), the observation the Backend
protocol answers with, and its tasks' logs. Reads only; the pass (passes.py) writes what it learns."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clusters.backends.base import JobObservation, ObservedState, TaskObservation
from clusters.backends.contract import storage, toolbox
from clusters.backends.local import contract
from clusters.backends.local.proc import is_alive, read_json
from clusters.backends.local.records import HOLDING, WAITING, RecordStore
from clusters.backends.local.records import now as _now

LOG_TAIL_LINES = 20  # of a failed task's log, in its job's message
START_TIMEOUT_S = 30.0  # a task whose supervisor never showed up by then is lost


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts else None


def signal_name(sig: int | None) -> str:
    if not sig:
        return ""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@dataclass
class TaskRuntime:
    """What the files and /proc say about one task right now."""

    running: bool
    exit_code: int | None = None
    signal: int | None = None
    lost: bool = False
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    # A running task whose command failed and that holds for debugging: (mode, exit code, until epoch).
    held: tuple[str, int, int] | None = None
    held_since: float | None = None  # when the hold began (its command's end)

    @property
    def ended(self) -> bool:
        return not self.running

    @property
    def ok(self) -> bool:
        return not self.running and not self.lost and self.exit_code == 0


def task_runtime(store: RecordStore, job_id: str, name: str, task: dict[str, Any], since: float = 0) -> TaskRuntime:
    """``since``: when the job was placed; a task with no supervisor that long after is lost."""
    task_dir = store.task_dir(job_id, name)
    child = read_json(task_dir / "child.json") or {}
    started = child.get("started_at")
    done = read_json(task_dir / "exit.json")
    if done is not None:
        return TaskRuntime(
            False, done["exit_code"], done.get("signal"), False, child.get("pid"), started, done["finished_at"]
        )
    pid, starttime = task.get("supervisor_pid"), task.get("supervisor_start")
    if not pid:
        found = read_json(task_dir / "supervisor.json") or {}
        pid, starttime = found.get("pid"), found.get("starttime")
    if pid and is_alive(pid, starttime):
        held, since = read_held(task_dir)
        return TaskRuntime(True, pid=child.get("pid"), started_at=started, held=held, held_since=since)
    if not pid and _now() - (task.get("launched_at") or since) < START_TIMEOUT_S:
        # The supervisor is still starting (or, after a worker died half-way through a start, may be).
        return TaskRuntime(True, started_at=started)
    done = read_json(task_dir / "exit.json")  # it may have finished between the two looks
    if done is not None:
        return TaskRuntime(
            False, done["exit_code"], done.get("signal"), False, child.get("pid"), started, done["finished_at"]
        )
    return TaskRuntime(
        False, lost=True, pid=child.get("pid"), started_at=started, finished_at=task.get("lost_at") or _now()
    )


def run_dir(task_dir: Path) -> Path:
    """The task's ``EASYAI_RUN_DIR`` (clusters.backends.contract.toolbox): the wrapper's files, the task user's."""
    return task_dir / "run"


def read_held(task_dir: Path) -> tuple[tuple[str, int, int] | None, float | None]:
    """The task's hold as its wrapper wrote it, and when; (None, None) when it holds not (or was released)."""
    run = run_dir(task_dir)
    try:
        text = (run / "held").read_text()
        since = (run / "held").stat().st_mtime
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None, None
    held = toolbox.parse_held(text)
    if held is None or (run / "release").exists():
        return None, None
    return held, since


def service_restarts(task_dir: Path, names: list[str]) -> dict[str, int]:
    """How often each of a task's services was restarted after it ended (the wrapper counts them)."""
    counts = {}
    for name in names:
        try:
            counts[name] = int((run_dir(task_dir) / "services" / f"{name}.restarts").read_text().strip() or 0)
        except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError):
            counts[name] = 0
    return counts


def services_line(task_dir: Path, services: list[dict[str, Any]]) -> str:
    """A running task's note on its services that were restarted ("" when none was)."""
    counts = service_restarts(task_dir, [s["name"] for s in services if s.get("name")])
    restarted = [f"{name} {n} time{'s' if n != 1 else ''}" for name, n in counts.items() if n]
    return f"services restarted: {', '.join(restarted)}" if restarted else ""


def task_held(store: RecordStore, job_id: str, task_name: str) -> tuple[str, int, int] | None:
    """(mode, exit code, until in epoch seconds) while the task's process holds after its command failed (a
    shell or an SSH connection may join it then, whatever the job's state says); None otherwise."""
    record = store.load(job_id)
    task = (record or {}).get("tasks", {}).get(task_name)
    if record is None or task is None or not task["process"] or record["status"] not in HOLDING:
        return None
    runtime = task_runtime(store, job_id, task_name, task, record.get("started_at") or 0)
    if runtime.ended or runtime.held is None or runtime.held[2] <= _now():
        return None
    return runtime.held


def task_runtimes(store: RecordStore, record: dict[str, Any]) -> dict[str, TaskRuntime]:
    since = record.get("started_at") or 0
    return {
        name: task_runtime(store, record["job_id"], name, task, since)
        for name, task in record["tasks"].items()
        if task["process"] and not task.get("skipped")
    }


def all_ended(store: RecordStore, record: dict[str, Any]) -> bool:
    return all(rt.ended for rt in task_runtimes(store, record).values())


def task_over(store: RecordStore, job_id: str, task_name: str) -> bool:
    """No more log will come: the task ended, never started and never will, or the job is gone."""
    record = store.load(job_id)
    if record is None:
        return True
    task = record["tasks"].get(task_name)
    if task is None or not task["process"]:
        return True
    if record["status"] == WAITING:
        return False
    if task.get("skipped"):
        return True
    return task_runtime(store, job_id, task_name, task, record.get("started_at") or 0).ended


def observation(store: RecordStore, job_id: str, record: dict[str, Any] | None) -> JobObservation:
    if record is None:
        return JobObservation(job_id=job_id, state=ObservedState.MISSING)
    description = record["description"]
    host = socket.gethostname()
    outcome = record.get("outcome")
    tasks: list[TaskObservation] = []
    runtimes = task_runtimes(store, record) if record["status"] in HOLDING else {}
    launcher = next((n for n, t in record["tasks"].items() if t["process"]), None)
    for spec in description["tasks"]:
        name = spec["name"]
        task = record["tasks"][name]
        obs = TaskObservation(
            role=spec["role"],
            index=spec["index"],
            state=ObservedState.PENDING,
            node=host,
            address=contract.LOCALHOST,
            gpu_ids=list(task.get("gpu_ids", [])),
        )
        source = name if task["process"] else launcher  # an MPI rank lives and ends with its launcher
        runtime = runtimes.get(source) if source else None
        info = record["tasks"].get(source, {}) if source else {}
        if record["status"] == WAITING:
            obs.reason, obs.message = "waiting", record.get("message", "")
        elif runtime is not None and runtime.running and runtime.held and task["process"]:
            # Its command failed and the task holds for debugging: keep_failed counts as failed (the job
            # failed with it), pause_on_failure as running; either way its process is there to look into.
            mode, code, until = runtime.held
            obs.held, obs.held_until, obs.exit_code = mode, _dt(until), code
            if mode == "keep_failed":
                obs.state, obs.reason = ObservedState.FAILED, "exit_code"
                obs.finished_at = _dt(runtime.held_since)
            else:
                obs.state = ObservedState.RUNNING
        elif runtime is not None and runtime.running:
            obs.state = ObservedState.RUNNING
        elif info.get("launched_at") or runtime is not None:
            code = runtime.exit_code if runtime else info.get("exit_code")
            lost = runtime.lost if runtime else info.get("lost", False)
            finished = (runtime.finished_at if runtime else None) or info.get("finished_at")
            obs.exit_code = code
            obs.finished_at = _dt(finished)
            if code == 0 and not lost:
                obs.state = ObservedState.SUCCEEDED
            elif outcome and outcome.get("task") != source and finished and finished >= outcome["at"] - 0.001:
                # Ended after the job's outcome was decided: stopped by us, not failed by itself.
                obs.state, obs.reason = ObservedState.STOPPED, outcome["reason"]
            else:
                obs.state = ObservedState.FAILED
                obs.reason = "lost" if lost else "exit_code"
        elif outcome:
            obs.state, obs.reason = ObservedState.STOPPED, outcome["reason"]
        if obs.state == ObservedState.RUNNING and task.get("endpoints"):
            obs.endpoints = {name: f"{contract.LOCALHOST}:{port}" for name, port in task["endpoints"].items()}
        if runtime is not None and runtime.running and task["process"] and not obs.message:
            obs.message = services_line(store.task_dir(job_id, name), spec.get("services") or [])
        pid = (runtime.pid if runtime else None) or info.get("pid")
        if pid and task["process"]:
            obs.pod_name = f"pid {pid}"
        started = (runtime.started_at if runtime else None) or info.get("started_at")
        obs.started_at = _dt(started)
        tasks.append(obs)

    started_at = _dt(record.get("started_at"))
    if outcome:
        return JobObservation(
            job_id=job_id,
            state=outcome["state"],
            reason=outcome["reason"],
            message=outcome.get("message", ""),
            tasks=tasks,
            started_at=started_at,
            finished_at=_dt(outcome["at"]),
        )
    if record["status"] == WAITING:
        return JobObservation(job_id, ObservedState.PENDING, "waiting", record.get("message", ""), tasks)
    return JobObservation(job_id, ObservedState.RUNNING, "running", "", tasks, started_at)


def log_path(store: RecordStore, storage_root: Path, job_id: str, task_name: str) -> Path:
    record = store.load(job_id)
    task = (record or {}).get("tasks", {}).get(task_name) or {}
    return Path(task["log"]) if task.get("log") else storage.task_log_path(storage_root, job_id, task_name)


def read_log(
    store: RecordStore, storage_root: Path, job_id: str, task_name: str, offset: int = 0, limit: int | None = None
) -> tuple[bytes, int]:
    path = log_path(store, storage_root, job_id, task_name)
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read() if limit is None else handle.read(limit)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def follow_log(store: RecordStore, storage_root: Path, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
    idle_since = time.monotonic()
    while True:
        data, offset = read_log(store, storage_root, job_id, task_name, offset, 1 << 20)
        if data:
            idle_since = time.monotonic()
            yield data
            continue
        if time.monotonic() - idle_since >= 1.0:
            # A silent task: an empty chunk now and then lets a reader whose client left stop.
            idle_since = time.monotonic()
            yield b""
        if task_over(store, job_id, task_name):
            # The task may have written its last bytes between our read and its end.
            data, offset = read_log(store, storage_root, job_id, task_name, offset)
            if data:
                yield data
            return
        time.sleep(0.05)


def log_tail(store: RecordStore, storage_root: Path, job_id: str, task_name: str, lines: int = LOG_TAIL_LINES) -> str:
    path = log_path(store, storage_root, job_id, task_name)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])
