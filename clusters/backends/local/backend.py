"""The local backend: runs a job's tasks as OS processes on this host.

Nothing it needs lives only in memory. Under ``EASYAI_LOCAL_STATE_DIR/<cluster>/``:

    placement.lock                 flock'ed around every change (two workers never double-book)
    jobs/<job_id>.json             the job: description, status, placement, pids, outcome
    tasks/<job_id>/<task>/         one task: spec.json (argv, cwd, env), supervisor.json,
                                   child.json, exit.json (see supervisor.py), stop, shells/

A job's record moves waiting -> running -> ending -> ended. "ending" means
its outcome is decided (a task failed, a stop or a preemption) while some of
its processes are still being stopped; it holds its resources until they are
gone. Placement runs in submit() and in every observe() pass.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from clusters.backends.base import (
    BackendError,
    BackendRejected,
    Capacity,
    JobDescription,
    JobObservation,
    ObservedState,
    TaskDescription,
    TaskObservation,
    TeamDescription,
)
from clusters.backends.contract import storage
from clusters.backends.local import contract, isolation, placement, sandbox
from clusters.backends.local.proc import (
    is_alive,
    kill_group,
    kill_pid,
    kill_session,
    read_json,
    start_time,
    write_json_atomic,
)
from clusters.backends.local.resources import LocalConfig, load_config
from clusters.backends.local.shell import PtyShell
from clusters.crypto import endpoint_token

WAITING, RUNNING, ENDING, ENDED = "waiting", "running", "ending", "ended"
HOLDING = (RUNNING, ENDING)  # statuses whose placement holds resources

LOG_TAIL_LINES = 20
START_TIMEOUT_S = 30.0  # a task whose supervisor never showed up by then is lost
SUPERVISOR_KILL_AFTER_S = 5.0
SHELL_JOIN_WAIT_S = 5.0  # how long a shell waits for a starting task's read-only data_dir  # after SIGKILL to a task, how long its supervisor gets to record the exit
REPO_ROOT = Path(__file__).resolve().parents[3]


def _now() -> float:
    return time.time()


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts else None


def _job_from_dict(data: dict[str, Any]) -> JobDescription:
    fields = dict(data)
    fields["tasks"] = [
        TaskDescription(**{**t, "places": [storage.Place(**place) for place in t.get("places", [])]})
        for t in data.get("tasks", [])
    ]
    created = data.get("created_at")
    fields["created_at"] = datetime.fromisoformat(created) if created else None
    return JobDescription(**fields)


def _signal_name(sig: int | None) -> str:
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

    @property
    def ended(self) -> bool:
        return not self.running

    @property
    def ok(self) -> bool:
        return not self.running and not self.lost and self.exit_code == 0


class LocalBackend:
    """Backend protocol over local processes; see the module docstring for the state it keeps."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.name: str = cluster.name

    # --- where things are (read at call time: settings may change under tests) ---------------

    @property
    def state_dir(self) -> Path:
        return Path(settings.EASYAI_LOCAL_STATE_DIR) / self.name

    @property
    def storage_root(self) -> Path:
        return Path(settings.EASYAI_STORAGE_ROOT)

    def _job_file(self, job_id: str, *, ended: bool = False) -> Path:
        return self.state_dir / ("ended" if ended else "jobs") / f"{job_id}.json"

    def _task_dir(self, job_id: str, task_name: str) -> Path:
        return self.state_dir / "tasks" / job_id / task_name

    def config(self) -> LocalConfig:
        return load_config(self.name, getattr(self.cluster, "settings", None) or {}, settings.EASYAI_STOP_GRACE)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        (self.state_dir / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state_dir / "placement.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self, job_id: str) -> dict[str, Any] | None:
        return read_json(self._job_file(job_id)) or read_json(self._job_file(job_id, ended=True))

    def _load_all(self) -> dict[str, dict[str, Any]]:
        """The records of active jobs (waiting, running, ending): what a pass works on."""
        records: dict[str, dict[str, Any]] = {}
        jobs_dir = self.state_dir / "jobs"
        if not jobs_dir.is_dir():
            return records
        for path in jobs_dir.glob("*.json"):
            record = read_json(path)
            if record:
                records[record["job_id"]] = record
        return records

    def _save(self, record: dict[str, Any]) -> None:
        if record["status"] != ENDED:
            write_json_atomic(self._job_file(record["job_id"]), record)
            return
        # An ended job moves aside, so passes read only active jobs however many ended ones are kept.
        # Written there before removed here: a reader in between finds it in one place or the other.
        (self.state_dir / "ended").mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self._job_file(record["job_id"], ended=True), record)
        self._job_file(record["job_id"]).unlink(missing_ok=True)

    # --- the protocol -----------------------------------------------------------------------------

    def sandbox(self, config: LocalConfig | None = None) -> sandbox.Sandbox | None:
        """How this cluster's tasks are isolated; None when they run unsandboxed (see isolation_problem)."""
        config = config or self.config()
        if self.isolation_problem(config):
            return None
        return sandbox.Sandbox(config.bwrap, config.sandbox_user, config.sandbox_group, config.sandbox_read_only)

    def isolation_problem(self, config: LocalConfig | None = None) -> str:
        """Why this cluster's tasks are not isolated from the portal and from each other ("" when they are)."""
        config = config or self.config()
        if not config.isolation:
            return "task isolation is turned off (settings.isolation: false)"
        return sandbox.refused(config.bwrap, config.sandbox_user, config.sandbox_group)

    def visible(self, job: JobDescription, task: TaskDescription) -> list[sandbox.Mount]:
        """What a task of this job sees of the storage besides the system: what a pod of it would mount."""
        root = self.storage_root
        mounts = [
            sandbox.Mount(str(root / place.relative), not place.read_only)
            for place in task.places_seen(job)
            if place.variable != "pre_model_dir"
        ]
        if task.storage.get("pre_model_dir"):
            # Another job's output: read, never changed from here.
            mounts.append(sandbox.Mount(task.storage["pre_model_dir"], False))
        if job.framework == "tensorboard":
            # The summary_dirs it shows, read-only, as a TensorBoard pod mounts them (only the notebooks app
            # starts these jobs, over jobs their user may see).
            for item in filter(None, (p.strip() for p in task.env.get(storage.TENSORBOARD_SOURCES, "").split(","))):
                match = storage.TENSORBOARD_SOURCE.match(item)
                if match:
                    summary = storage.output_dir(root, match.group(1), "summary_dir", match.group(2))
                    mounts.append(sandbox.Mount(str(summary), False))
        for volume in job.volumes:
            host_path = (volume.get("hostPath") or {}).get("path")
            if host_path:
                mounts.append(sandbox.Mount(os.path.normpath(host_path), not volume.get("read_only", True)))
        return mounts

    def check(self, job: JobDescription) -> list[str]:
        config = self.config()
        problems: list[str] = []
        unisolated = self.isolation_problem(config)
        if unisolated and not config.allow_unisolated and not _platform_admin(job.owner):
            problems.append(
                f"cluster {self.name} cannot isolate its tasks ({unisolated}): until an operator fixes that or "
                "lets everyone run unisolated tasks (settings.allow_unisolated), only platform admins may run jobs there"
            )
        for task in job.tasks:
            if not contract.runs_as_process(job, task):
                continue
            working_dir = self._working_dir(job, task)
            seen = [m.path for m in self.visible(job, task)]
            if not working_dir.startswith("/") or not sandbox.inside(working_dir, seen):
                problems.append(
                    f"working_dir: {working_dir} is outside what a task may see; use a folder in your personal "
                    f"workspace ({storage.personal_workspace(self.storage_root, job.owner)}), the public workspace, "
                    "the job's own folders or a volume it names"
                )
                break
        if config.readonly_data_dir and unisolated:
            refused = isolation.readonly_refused()
            if refused:
                problems.append(f"cluster {self.name} keeps data_dir read-only (readonly_data_dir), but {refused}")
        if job.framework == "mpi" and not shutil.which("mpirun"):
            problems.append("MPI jobs need mpirun on this host; install Open MPI (apt-get install openmpi-bin)")
        for task in job.tasks:
            if contract.runs_as_process(job, task) and not task.command:
                problems.append(
                    f"task {task.name} has no command: the local backend runs commands, not an image's entrypoint"
                )
        total = placement.Demand(config.capacity.cpu_milli, config.capacity.memory_bytes, len(config.capacity.gpus))
        problems += placement.too_big(self._need(job), total)
        return problems

    def render(self, job: JobDescription) -> list[dict[str, Any]]:
        """The processes submit would start; ports and GPU ids are chosen only at placement."""
        mpirun = shutil.which("mpirun")
        config = self.config()
        box = self.sandbox(config)
        readonly = config.readonly_data_dir and box is None
        plans = []
        for task in job.tasks:
            demand = placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
            entry: dict[str, Any] = {
                "kind": "LocalProcess",
                "task": task.name,
                "role": task.role,
                "index": task.index,
                "resources": {"cpu_milli": task.cpu_milli, "memory_bytes": task.memory_bytes, "gpu": task.gpu},
                "accounted": {"cpu_milli": demand.cpu_milli, "memory_bytes": demand.memory_bytes, "gpu": demand.gpu},
            }
            if contract.runs_as_process(job, task):
                env = contract.task_env(job, task, {}, ["?"] * task.gpu)
                if task.ports:
                    # The spec's ports; each gets a free host port at placement, given as EASYAI_PORT_<NAME>.
                    entry["ports"] = dict(task.ports)
                argv = contract.task_argv(job, task, mpirun or "mpirun")
                if readonly and env.get("data_dir"):
                    argv = isolation.readonly_argv(argv, env["data_dir"])
                entry.update(
                    argv=argv,
                    working_dir=self._working_dir(job, task),
                    env=sorted(env),
                    log=self._task_log(job, task),
                )
                if box is not None:
                    mounts = self.visible(job, task)
                    entry["sandbox"] = {
                        "user": box.uid,
                        "group": box.gid,
                        "writable": sorted(m.path for m in mounts if m.writable),
                        "read_only": sorted(m.path for m in mounts if not m.writable),
                    }
                else:
                    entry["sandbox"] = None
            else:
                entry.update(argv=None, note="an MPI rank started by the launcher's mpirun, not a process of its own")
            plans.append(entry)
        return plans

    def submit(self, job: JobDescription) -> None:
        problems = self.check(job)
        if problems:
            raise BackendRejected("; ".join(problems))
        with self._locked():
            if self._load(job.job_id) is not None:
                return  # idempotent: a repeated submit of the same job creates nothing
            now = _now()
            tasks = {}
            for task in job.tasks:
                demand = placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
                tasks[task.name] = {
                    "cpu_milli": demand.cpu_milli,
                    "memory_bytes": demand.memory_bytes,
                    "gpu": demand.gpu,
                    "process": contract.runs_as_process(job, task),
                }
            record = {
                "version": 1,
                "job_id": job.job_id,
                "description": job.to_dict(),
                "priority": job.priority,
                "created_at": job.created_at.timestamp() if job.created_at else now,
                "seq": time.time_ns(),
                "submitted_at": now,
                "status": WAITING,
                "message": "",
                "started_at": None,
                "finished_at": None,
                "outcome": None,
                "stop": None,
                "ports": {},
                "tasks": tasks,
            }
            self._save(record)
            self._pass()

    def observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        with self._locked():
            records = self._pass()
        return {job_id: self._observation(job_id, records.get(job_id) or self._load(job_id)) for job_id in job_ids}

    def stop(self, job_id: str) -> None:
        """SIGTERM to every task's process group, SIGKILL to what is left after the grace period."""
        grace = self.config().stop_grace
        with self._locked():
            record = self._load(job_id)
            if record is None or record["status"] == ENDED:
                return
            if record["status"] == WAITING:
                record["status"] = ENDED
                record["outcome"] = {"state": ObservedState.STOPPED, "reason": "stopped", "message": "", "at": _now()}
                record["finished_at"] = record["outcome"]["at"]
                self._save(record)
                return
            if record["outcome"] is None:
                record["outcome"] = {"state": ObservedState.STOPPED, "reason": "stopped", "message": "", "at": _now()}
            self._begin_stop(record, grace)
            self._save(record)
        # Wait without the lock, so other workers' passes go on meanwhile.
        deadline = (record["stop"] or {}).get("deadline", _now() + grace)
        while _now() < deadline and not self._all_ended(record):
            time.sleep(0.05)
        if not self._all_ended(record):
            self._kill_tasks(record)
            until = _now() + SUPERVISOR_KILL_AFTER_S
            while _now() < until and not self._all_ended(record):
                time.sleep(0.05)
        with self._locked():
            latest = self._load(job_id)
            if latest is not None and latest["status"] != ENDED and latest.get("stop"):
                latest["stop"]["killed_at"] = latest["stop"].get("killed_at") or _now()
                self._save(latest)
            self._pass()

    def delete(self, job_id: str) -> None:
        with self._locked():
            record = self._load(job_id)
            if record is not None and record["status"] != ENDED:
                # Called after the job's logs are saved: nothing of it may keep running.
                for name in record["tasks"]:
                    if self._task_dir(job_id, name).is_dir():
                        (self._task_dir(job_id, name) / "stop").touch()
                self._kill_tasks(record, supervisors=True)
            self._kill_shells(job_id, record)
            self._drop_shm(job_id)
            self._job_file(job_id).unlink(missing_ok=True)
            self._job_file(job_id, ended=True).unlink(missing_ok=True)
            shutil.rmtree(self.state_dir / "tasks" / job_id, ignore_errors=True)
            self._pass()

    def capacity(self) -> Capacity:
        config = self.config()
        with self._locked():
            records = self._pass(config)
        held = placement.Demand()
        held_gpus: set[str] = set()
        for record in records.values():
            if record["status"] in HOLDING:
                for task in record["tasks"].values():
                    held += placement.Demand(task["cpu_milli"], task["memory_bytes"], 0)
                    held_gpus.update(task.get("gpu_ids", []))
        total_gpus = [g.id for g in config.capacity.gpus]
        return Capacity(
            cpu_milli=config.capacity.cpu_milli,
            memory_bytes=config.capacity.memory_bytes,
            gpu=len(total_gpus),
            free_cpu_milli=max(0, config.capacity.cpu_milli - held.cpu_milli),
            free_memory_bytes=max(0, config.capacity.memory_bytes - held.memory_bytes),
            free_gpu=sum(1 for g in total_gpus if g not in held_gpus),
        )

    def read_log(self, job_id: str, task_name: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int]:
        path = self._log_path(job_id, task_name)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read() if limit is None else handle.read(limit)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def follow_log(self, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
        idle_since = time.monotonic()
        while True:
            data, offset = self.read_log(job_id, task_name, offset, 1 << 20)
            if data:
                idle_since = time.monotonic()
                yield data
                continue
            if time.monotonic() - idle_since >= 1.0:
                # A silent task: an empty chunk now and then lets a reader whose client left stop.
                idle_since = time.monotonic()
                yield b""
            if self._task_over(job_id, task_name):
                # The task may have written its last bytes between our read and its end.
                data, offset = self.read_log(job_id, task_name, offset)
                if data:
                    yield data
                return
            time.sleep(0.05)

    def summary_place(self, job_id: str, task_name: str, stored: str) -> str:
        return stored  # the sandbox shows it where it lies

    def provision_team(self, team: TeamDescription) -> None:
        """Nothing to provision on this host: a team has no namespace, quota object or queue here."""

    def open_shell(self, job_id: str, task_name: str, command: list[str] | None = None) -> PtyShell:
        record = self._load(job_id)
        if record is None:
            raise BackendError(f"job {job_id} is not on cluster {self.name}")
        task = record["tasks"].get(task_name)
        if task is None:
            raise BackendError(f"job {job_id} has no task {task_name}")
        if not task["process"]:
            raise BackendError(f"{task_name} is an MPI rank inside the launcher's mpirun; open a shell in launcher-0")
        if record["status"] != RUNNING or self._task_runtime(job_id, task_name, task).ended:
            raise BackendError(f"task {task_name} of job {job_id} is not running; a shell opens only in a running task")
        task_dir = self._task_dir(job_id, task_name)
        spec = read_json(task_dir / "spec.json") or {}
        env = dict(spec.get("env") or {})
        env.setdefault("TERM", "xterm-256color")
        cwd = spec.get("working_dir") or spec.get("cwd") or "/"
        if task.get("sandboxed"):
            return self._sandboxed_shell(job_id, task_name, task_dir, env, cwd, command)
        if command:
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
            argv = isolation.join_argv(argv, child["pid"])
        return PtyShell(argv, env, cwd, registry=task_dir / "shells")

    def _sandboxed_shell(
        self, job_id: str, task_name: str, task_dir: Path, env: dict[str, str], cwd: str, command: list[str] | None
    ) -> PtyShell:
        """A shell in the task's own sandbox, as its user: its files, its processes, nothing of the host's."""
        box = self.sandbox()
        if box is None:
            raise BackendError(f"cluster {self.name} can no longer make sandboxes: {self.isolation_problem()}")
        deadline = time.monotonic() + SHELL_JOIN_WAIT_S
        while True:
            child = read_json(task_dir / "child.json") or {}
            target = sandbox.member(child["pid"]) if child.get("pid") else None
            if target:
                break
            if time.monotonic() > deadline:
                raise BackendError(f"task {task_name} of job {job_id} is still starting; try again")
            time.sleep(0.02)
        # No rcfile: the sandbox shows nothing of the task's folder here, and HOME is the owner's workspace.
        argv = (
            list(command)
            if command
            else ["bash", "-i"]
            if shutil.which("bash", path=env.get("PATH"))
            else ["/bin/sh", "-i"]
        )
        return PtyShell(sandbox.join_argv(box, argv, target, cwd), env, "/", registry=task_dir / "shells")

    # --- one pass: refresh, decide, place -------------------------------------------------------------

    def _pass(self, config: LocalConfig | None = None) -> dict[str, dict[str, Any]]:
        """Under the lock: bring every record up to date with its processes, then place waiting jobs."""
        config = config or self.config()
        records = self._load_all()
        for record in records.values():
            if record["status"] in HOLDING and self._refresh(record, config):
                self._save(record)
        self._place(records, config)
        return records

    def _task_runtime(self, job_id: str, name: str, task: dict[str, Any], since: float = 0) -> TaskRuntime:
        """``since``: when the job was placed; a task with no supervisor that long after is lost."""
        task_dir = self._task_dir(job_id, name)
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
            return TaskRuntime(True, pid=child.get("pid"), started_at=started)
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

    def _runtimes(self, record: dict[str, Any]) -> dict[str, TaskRuntime]:
        since = record.get("started_at") or 0
        return {
            name: self._task_runtime(record["job_id"], name, task, since)
            for name, task in record["tasks"].items()
            if task["process"] and not task.get("skipped")
        }

    def _all_ended(self, record: dict[str, Any]) -> bool:
        return all(rt.ended for rt in self._runtimes(record).values())

    def _refresh(self, record: dict[str, Any], config: LocalConfig) -> bool:
        """Fold the tasks' files into the record: outcome, stop escalation, end. True when it changed."""
        before = repr(record)
        job_id = record["job_id"]
        runtimes = self._runtimes(record)
        for name, rt in runtimes.items():
            task = record["tasks"][name]
            if rt.lost and not task.get("lost_at"):
                task["lost_at"] = rt.finished_at
                # Its supervisor died (killed, or the host restarted): whatever it left in its session goes too.
                kill_session(task.get("supervisor_pid"))
            if rt.ended:
                task.update(exit_code=rt.exit_code, finished_at=rt.finished_at, lost=rt.lost)
            if rt.started_at and not task.get("started_at"):
                task["started_at"] = rt.started_at
                task["pid"] = rt.pid

        if record["outcome"] is None:
            failures = [(rt.finished_at or 0, name, rt) for name, rt in runtimes.items() if rt.ended and not rt.ok]
            if failures:
                at, name, rt = min(failures)
                if rt.lost:
                    reason = "lost"
                    message = (
                        f"task {name} ended without an exit code (its supervisor vanished; was the host restarted?)"
                    )
                else:
                    reason = "exit_code"
                    how = (
                        f"was killed by {_signal_name(rt.signal)} (exit code {rt.exit_code})"
                        if rt.signal
                        else f"exited with code {rt.exit_code}"
                    )
                    message = f"task {name} {how}"
                    tail = self._log_tail(job_id, name)
                    if tail:
                        message += f": {tail}"
                record["outcome"] = {
                    "state": ObservedState.FAILED,
                    "reason": reason,
                    "message": message,
                    "at": at or _now(),
                    "task": name,
                }
                # Like the operators: one failed task fails the job, and its other tasks are stopped.
                if not all(r.ended for r in runtimes.values()):
                    self._begin_stop(record, config.stop_grace)
            elif runtimes and all(rt.ok for rt in runtimes.values()):
                finished = max(rt.finished_at or 0 for rt in runtimes.values()) or _now()
                record["outcome"] = {
                    "state": ObservedState.SUCCEEDED,
                    "reason": "succeeded",
                    "message": "",
                    "at": finished,
                }

        if record["outcome"] is not None:
            if all(rt.ended for rt in runtimes.values()):
                record["status"] = ENDED
                record["finished_at"] = record["finished_at"] or record["outcome"]["at"]
                self._kill_shells(job_id, record)
                self._drop_shm(job_id)
            else:
                record["status"] = ENDING
                stop = record.get("stop") or {}
                if stop and _now() >= stop.get("deadline", 0) and not stop.get("killed_at"):
                    self._kill_tasks(record)
                    stop["killed_at"] = _now()
                elif stop.get("killed_at") and _now() >= stop["killed_at"] + SUPERVISOR_KILL_AFTER_S:
                    self._kill_tasks(record, supervisors=True)  # a supervisor that does not finish is stuck
        return repr(record) != before

    def _place(self, records: dict[str, dict[str, Any]], config: LocalConfig) -> None:
        waiting = [r for r in records.values() if r["status"] == WAITING]
        if not waiting:
            return
        capacity = config.capacity
        total = placement.Demand(capacity.cpu_milli, capacity.memory_bytes, len(capacity.gpus))
        placed: list[placement.PlacedJob] = []
        held_gpus: set[str] = set()
        taken_ports: set[int] = set()
        for record in records.values():
            if record["status"] not in HOLDING:
                continue
            holds = placement.Demand()
            for task in record["tasks"].values():
                holds += placement.Demand(task["cpu_milli"], task["memory_bytes"], len(task.get("gpu_ids", [])))
                held_gpus.update(task.get("gpu_ids", []))
            taken_ports.update(record.get("ports", {}).values())
            for task in record["tasks"].values():
                taken_ports.update((task.get("endpoints") or {}).values())
            placed.append(
                placement.PlacedJob(
                    record["job_id"], record["priority"], record["started_at"] or 0, holds, record["status"] == ENDING
                )
            )
        queue = [
            placement.WaitingJob(
                r["job_id"],
                r["priority"],
                r["created_at"],
                r["seq"],
                [
                    (name, placement.Demand(t["cpu_milli"], t["memory_bytes"], t["gpu"]))
                    for name, t in r["tasks"].items()
                ],
            )
            for r in waiting
        ]
        free_gpus = [g.id for g in capacity.gpus if g.id not in held_gpus]
        decision = placement.plan(queue, placed, total, free_gpus, preemption=config.preemption)

        for job_id in decision.preempt:
            victim = records[job_id]
            victim["outcome"] = {
                "state": ObservedState.STOPPED,
                "reason": "preempted",
                "message": "stopped to make room for a higher-priority job",
                "at": _now(),
            }
            self._begin_stop(victim, config.stop_grace)
            victim["status"] = ENDING
            self._save(victim)
        for job_id, gpu_ids in decision.start.items():
            record = records[job_id]
            try:
                self._start(record, gpu_ids, taken_ports, config)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                # Start no half gang: what did start is stopped, and the job fails saying why.
                record["outcome"] = {
                    "state": ObservedState.FAILED,
                    "reason": "start_failed",
                    "message": f"could not start the job: {exc}",
                    "at": _now(),
                }
                for task in record["tasks"].values():
                    task["skipped"] = not task.get("launched_at")  # never started: nothing to wait for
                if any(t.get("launched_at") for t in record["tasks"].values()):
                    self._begin_stop(record, 0)
                    record["status"] = ENDING
                else:
                    record["status"] = ENDED
                    record["finished_at"] = record["outcome"]["at"]
                    self._drop_shm(job_id)
                self._save(record)
        for job_id, message in decision.waiting.items():
            record = records[job_id]
            if record["message"] != message:
                record["message"] = message
                self._save(record)

    # --- starting and stopping processes ---------------------------------------------------------------

    def _working_dir(self, job: JobDescription, task: TaskDescription) -> str:
        return task.working_dir or str(storage.personal_workspace(self.storage_root, job.owner))

    def _task_log(self, job: JobDescription, task: TaskDescription) -> str:
        """The task's log file, as the description gives it (the layout's for one recorded before it did)."""
        return task.log_path or str(storage.task_log_path(self.storage_root, job.job_id, task.name))

    def _start(
        self,
        record: dict[str, Any],
        gpu_ids: dict[str, list[str]],
        taken_ports: set[int],
        config: LocalConfig,
    ) -> None:
        """Start every task of a placed job (the gang), each under a detached supervisor."""
        job = _job_from_dict(record["description"])
        job_id = job.job_id
        root = self.storage_root
        # The job's own places, never a previous job's model_dir: another job's output is not created for it.
        own = {
            root / place.relative
            for task in job.tasks
            for place in task.places_seen(job)
            if place.variable != "pre_model_dir"
        }
        for path in sorted(own):
            path.mkdir(parents=True, exist_ok=True)
        box = self.sandbox(config)
        readonly_data_dir = config.readonly_data_dir and box is None
        shm = None
        if box is not None:
            # The sandbox's user must be able to write where the task may (the job's folders, the workspaces)
            # and read data_dir; only the job's own places, never another job's folders it may read, nor a volume.
            for path in sorted(own):
                sandbox.give(path, box.uid, box.gid)
            shm = self._shm_dir(job_id, create=True, owner=(box.uid, box.gid))
        # data_dir is meant read-only. On Kubernetes the mount says so; here only a mount namespace of the task's
        # own can (readonly_data_dir, root only): changing the permissions of the owner's data is not ours to do.
        ports: dict[str, int] = {}
        if job.framework in contract.NETWORKED:
            ports = dict(
                zip([t.name for t in job.tasks], contract.free_ports(len(job.tasks), taken_ports), strict=True)
            )
            taken_ports.update(ports.values())
        # Named web endpoints: the spec's port is what the task would listen on in a pod; here every task
        # shares the host, so each named port gets a free host port of its own (EASYAI_PORT_<NAME>).
        endpoints: dict[str, dict[str, int]] = {}
        for task in job.tasks:
            if task.ports:
                chosen = contract.free_ports(len(task.ports), taken_ports)
                endpoints[task.name] = dict(zip(task.ports, chosen, strict=True))
                taken_ports.update(chosen)
        mpirun = shutil.which("mpirun")
        all_gpus = [g for ids in gpu_ids.values() for g in ids]
        now = _now()
        record.update(status=RUNNING, started_at=now, message="", ports=ports)
        for task in job.tasks:
            entry = record["tasks"][task.name]
            entry["gpu_ids"] = gpu_ids.get(task.name, [])
            entry["port"] = ports.get(task.name)
            entry["endpoints"] = endpoints.get(task.name, {})
            entry["log"] = self._task_log(job, task)
        # Recorded before any process starts: a worker that dies half-way leaves a record that says which
        # tasks were launched, and the next pass finds their supervisors through supervisor.json.
        self._save(record)
        for task in job.tasks:
            entry = record["tasks"][task.name]
            if not entry["process"]:
                continue
            # An MPI launcher's ranks use the GPUs placed for the whole job.
            visible = all_gpus if job.framework == "mpi" else entry["gpu_ids"]
            env = contract.task_env(job, task, ports, visible, endpoints=entry["endpoints"])
            if job.framework == "notebook" and "jupyter" in task.ports:
                # As on a cluster: Jupyter demands a token only the portal can make, and its proxy sends it;
                # another task on this host's loopback cannot use the notebook.
                env["JUPYTER_TOKEN"] = endpoint_token(job_id)
            cwd = self._working_dir(job, task)
            log = Path(entry["log"])
            log.parent.mkdir(parents=True, exist_ok=True)
            task_dir = self._task_dir(job_id, task.name)
            task_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            argv = contract.task_argv(job, task, mpirun)
            spec: dict[str, Any] = {"argv": argv, "cwd": cwd, "env": env, "log": str(log)}
            if box is not None:
                # The portal's HOME and TMPDIR are not there: the owner's workspace and the task's own /tmp are.
                if "HOME" not in task.env:
                    env["HOME"] = str(storage.personal_workspace(root, job.owner))
                if "TMPDIR" not in task.env:
                    env["TMPDIR"] = "/tmp"
                spec["argv"] = sandbox.task_argv(box, argv, cwd=cwd, mounts=self.visible(job, task), shm=shm)
                spec["cwd"] = "/"  # the sandbox enters the working directory itself, as the task's user
                spec["working_dir"] = cwd
                spec["sandboxed"] = True
                entry["sandboxed"] = True  # a shell joins the task's sandbox
            else:
                Path(cwd).mkdir(parents=True, exist_ok=True)
                if readonly_data_dir and env.get("data_dir"):
                    spec["argv"] = isolation.readonly_argv(argv, env["data_dir"])
                    entry["own_mounts"] = True  # a shell joins the task's mount namespace
            write_json_atomic(task_dir / "spec.json", spec)
            entry["launched_at"] = _now()
            try:
                pid = self._launch(task_dir)
            except BaseException:
                entry.pop("launched_at", None)
                raise
            entry["supervisor_pid"] = pid
            entry["supervisor_start"] = start_time(pid)
        self._save(record)

    def _launch(self, task_dir: Path) -> int:
        """Start the task's supervisor detached: a throw-away sh backgrounds it and exits, so the supervisor
        is nobody's child here (init adopts it) and outlives this worker; sh prints its pid."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)}
        script = '"$1" -m clusters.backends.local.supervisor "$2" </dev/null >>"$2/supervisor.log" 2>&1 & echo $!'
        out = subprocess.run(
            ["/bin/sh", "-c", script, "sh", sys.executable, str(task_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(task_dir),
            start_new_session=True,
            check=True,
            timeout=30,
        ).stdout
        return int(out.strip())

    def _begin_stop(self, record: dict[str, Any], grace: float) -> None:
        """Ask every task to stop (SIGTERM to its process group); SIGKILL follows at the deadline."""
        if record.get("stop"):
            return
        now = _now()
        record["stop"] = {"at": now, "deadline": now + grace, "killed_at": None}
        for name, task in record["tasks"].items():
            task_dir = self._task_dir(record["job_id"], name)
            if not task["process"] or not task_dir.is_dir():
                continue
            # "stop" first, child.json second: the supervisor does the reverse (see supervisor.py).
            (task_dir / "stop").touch()
            child = read_json(task_dir / "child.json")
            if child and not (task_dir / "exit.json").exists():
                kill_group(child["pid"], signal.SIGTERM)
        self._kill_shells(record["job_id"], record)

    def _kill_tasks(self, record: dict[str, Any], *, supervisors: bool = False) -> None:
        """SIGKILL every task process group and whatever else is left in its supervisor's session."""
        for name, task in record["tasks"].items():
            task_dir = self._task_dir(record["job_id"], name)
            if not task["process"] or not task_dir.is_dir() or (task_dir / "exit.json").exists():
                continue
            child = read_json(task_dir / "child.json")
            if task.get("supervisor_pid"):
                sup, sup_start = task["supervisor_pid"], task.get("supervisor_start")
            else:  # launched by a worker that died before recording the pid
                found = read_json(task_dir / "supervisor.json") or {}
                sup, sup_start = found.get("pid"), found.get("starttime")
            if child:
                kill_group(child["pid"], signal.SIGKILL)
            if sup and is_alive(sup, sup_start):
                # The supervisor stays, to reap and record the exit; unless it is stuck itself.
                kill_session(sup, signal.SIGKILL, spare=None if supervisors else sup)
                if supervisors:
                    kill_pid(sup, signal.SIGKILL)

    def _shm_dir(self, job_id: str, *, create: bool = False, owner: tuple[int, int] | None = None) -> Path:
        """The job's /dev/shm, shared by its tasks only (NCCL and DataLoader workers use it)."""
        host_shm = Path("/dev/shm")
        base = host_shm if host_shm.is_dir() and os.access(host_shm, os.W_OK) else self.state_dir / "shm"
        path = base / f"easyai-{self.name}-{job_id}"
        if create:
            base.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
            # /dev/shm is everyone's: what is there must be the folder made here, not another user's or a link.
            found = os.lstat(path)
            if not stat.S_ISDIR(found.st_mode) or found.st_uid not in (0, *(owner[:1] if owner else ())):
                raise OSError(f"{path} is not a folder of the portal's: refusing to share it with the job's tasks")
            if owner:
                os.chown(path, *owner, follow_symlinks=False)
        return path

    def _drop_shm(self, job_id: str) -> None:
        shutil.rmtree(self._shm_dir(job_id), ignore_errors=True)

    def _kill_shells(self, job_id: str, record: dict[str, Any] | None) -> None:
        names = list(record["tasks"]) if record else []
        for name in names:
            shells = self._task_dir(job_id, name) / "shells"
            if not shells.is_dir():
                continue
            for entry in shells.iterdir():
                if entry.name.isdigit():
                    kill_group(int(entry.name), signal.SIGKILL)
                    entry.unlink(missing_ok=True)

    # --- reading back -----------------------------------------------------------------------------------

    def _need(self, job: JobDescription) -> placement.Demand:
        need = placement.Demand()
        for task in job.tasks:
            need += placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
        return need

    def _log_path(self, job_id: str, task_name: str) -> Path:
        record = self._load(job_id)
        task = (record or {}).get("tasks", {}).get(task_name) or {}
        return Path(task["log"]) if task.get("log") else storage.task_log_path(self.storage_root, job_id, task_name)

    def _log_tail(self, job_id: str, task_name: str, lines: int = LOG_TAIL_LINES) -> str:
        path = self._log_path(job_id, task_name)
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

    def _task_over(self, job_id: str, task_name: str) -> bool:
        """No more log will come: the task ended, never started and never will, or the job is gone."""
        record = self._load(job_id)
        if record is None:
            return True
        task = record["tasks"].get(task_name)
        if task is None or not task["process"]:
            return True
        if record["status"] == WAITING:
            return False
        if task.get("skipped"):
            return True
        return self._task_runtime(job_id, task_name, task, record.get("started_at") or 0).ended

    def _observation(self, job_id: str, record: dict[str, Any] | None) -> JobObservation:
        if record is None:
            return JobObservation(job_id=job_id, state=ObservedState.MISSING)
        description = record["description"]
        host = socket.gethostname()
        outcome = record.get("outcome")
        tasks: list[TaskObservation] = []
        runtimes = self._runtimes(record) if record["status"] in HOLDING else {}
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


def _platform_admin(username: str) -> bool:
    """Whether the job's owner is a platform admin: the one who may still run jobs on an unisolated host."""
    from django.contrib.auth import get_user_model

    from teams import permissions

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    return user is not None and permissions.is_platform_admin(user)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
