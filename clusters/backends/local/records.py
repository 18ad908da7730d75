"""The local backend's records: one JSON file per job under ``EASYAI_LOCAL_STATE_DIR/<cluster>/``, kept under a
file lock (two workers never double-book), and the task folders beside them.

    placement.lock                 flock'ed around every change
    jobs/<job_id>.json             an active job: description, status, placement, pids, outcome
    ended/<job_id>.json            an ended job, moved aside so passes read only active ones
    tasks/<job_id>/<task>/         one task: spec.json (argv, cwd, env), supervisor.json, child.json,
                                   exit.json (see supervisor.py), stop, shells/

A job's record moves waiting -> running -> ending -> ended. "ending" means its outcome is decided (a task
failed, a stop or a preemption) while some of its processes are still being stopped; it holds its resources
until they are gone.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import storage
from clusters.backends.local import contract, placement
from clusters.backends.local.proc import read_json, write_json_atomic

WAITING, RUNNING, ENDING, ENDED = "waiting", "running", "ending", "ended"
HOLDING = (RUNNING, ENDING)  # statuses whose placement holds resources


class TaskRecord(TypedDict, total=False):
    """One task in its job's record: what placement accounted, and what starting and watching it learnt."""

    cpu_milli: int
    memory_bytes: int
    gpu: int
    process: bool  # False: an MPI rank, started by its launcher's mpirun
    gpu_ids: list[str]
    port: int | None
    endpoints: dict[str, int]  # named web ports -> host ports
    log: str
    launched_at: float
    supervisor_pid: int
    supervisor_start: int | None
    sandboxed: bool
    own_mounts: bool
    skipped: bool  # never launched (a start failed first)
    started_at: float
    pid: int
    exit_code: int | None
    finished_at: float | None
    lost: bool
    lost_at: float


class JobRecord(TypedDict):
    """A job on this host: its description, where it stands, and its tasks."""

    version: int
    job_id: str
    description: dict[str, Any]  # JobDescription.to_dict()
    priority: str
    created_at: float
    seq: int  # submit order among jobs created in the same instant
    submitted_at: float
    status: str  # WAITING, RUNNING, ENDING, ENDED
    message: str  # why it waits
    started_at: float | None
    finished_at: float | None
    outcome: dict[str, Any] | None  # state, reason, message, at (and the task that decided it)
    stop: dict[str, Any] | None  # at, deadline, killed_at
    ports: dict[str, int]  # a networked job's task ports
    tasks: dict[str, TaskRecord]


def now() -> float:
    return time.time()


def job_from_dict(data: dict[str, Any]) -> JobDescription:
    fields = dict(data)
    fields["tasks"] = [
        TaskDescription(**{**t, "places": [storage.Place(**place) for place in t.get("places", [])]})
        for t in data.get("tasks", [])
    ]
    created = data.get("created_at")
    fields["created_at"] = datetime.fromisoformat(created) if created else None
    return JobDescription(**fields)


def new_record(job: JobDescription) -> JobRecord:
    """A submitted job's first record: waiting, with what placement accounts for each of its tasks."""
    at = now()
    tasks: dict[str, TaskRecord] = {}
    for task in job.tasks:
        demand = placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
        tasks[task.name] = {
            "cpu_milli": demand.cpu_milli,
            "memory_bytes": demand.memory_bytes,
            "gpu": demand.gpu,
            "process": contract.runs_as_process(job, task),
        }
    return {
        "version": 1,
        "job_id": job.job_id,
        "description": job.to_dict(),
        "priority": job.priority,
        "created_at": job.created_at.timestamp() if job.created_at else at,
        "seq": time.time_ns(),
        "submitted_at": at,
        "status": WAITING,
        "message": "",
        "started_at": None,
        "finished_at": None,
        "outcome": None,
        "stop": None,
        "ports": {},
        "tasks": tasks,
    }


class RecordStore:
    """The records of one local cluster, in ``state_dir``; every change is made under ``locked()``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def job_file(self, job_id: str, *, ended: bool = False) -> Path:
        return self.state_dir / ("ended" if ended else "jobs") / f"{job_id}.json"

    def task_dir(self, job_id: str, task_name: str) -> Path:
        return self.state_dir / "tasks" / job_id / task_name

    @contextmanager
    def locked(self) -> Iterator[None]:
        (self.state_dir / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state_dir / "placement.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, job_id: str) -> JobRecord | None:
        return read_json(self.job_file(job_id)) or read_json(self.job_file(job_id, ended=True))

    def load_all(self) -> dict[str, JobRecord]:
        """The records of active jobs (waiting, running, ending): what a pass works on."""
        records: dict[str, JobRecord] = {}
        jobs_dir = self.state_dir / "jobs"
        if not jobs_dir.is_dir():
            return records
        for path in jobs_dir.glob("*.json"):
            record = read_json(path)
            if record:
                records[record["job_id"]] = record
        return records

    def save(self, record: JobRecord) -> None:
        if record["status"] != ENDED:
            write_json_atomic(self.job_file(record["job_id"]), record)
            return
        # An ended job moves aside, so passes read only active jobs however many ended ones are kept.
        # Written there before removed here: a reader in between finds it in one place or the other.
        (self.state_dir / "ended").mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self.job_file(record["job_id"], ended=True), record)
        self.job_file(record["job_id"]).unlink(missing_ok=True)
