"""The local backend: runs a job's tasks as OS processes on this host.

Nothing it needs lives only in memory: the jobs' records and their tasks' folders are under
``EASYAI_LOCAL_STATE_DIR/<cluster>/`` (records.py, with the lock that keeps two workers from double-booking).
This module is the Backend protocol over them; the work is done in

- passes.py: one pass under the lock (bring the records up to date, then place waiting jobs), run by
  submit(), observe(), stop(), delete() and capacity();
- launch.py: what a task sees and what render shows; starting a placed job's tasks under their supervisors
  (in their sandboxes), stopping them;
- observe.py: reading the tasks back (TaskRuntime), the observations, reading and following the logs;
- shell.py: a shell in a running task (its sandbox or mount namespace);
- placement.py (pure: who starts, who waits, who is preempted), sandbox.py, supervisor.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from clusters.backends.base import (
    BackendRejected,
    Capacity,
    JobDescription,
    JobObservation,
    ObservedState,
    TaskDescription,
    TaskUsage,
    TeamDescription,
)
from clusters.backends.contract import storage
from clusters.backends.local import contract, isolation, launch, passes, placement, sandbox, shell, usage
from clusters.backends.local import observe as reading
from clusters.backends.local.passes import SUPERVISOR_KILL_AFTER_S
from clusters.backends.local.records import ENDED, HOLDING, WAITING, RecordStore, new_record
from clusters.backends.local.records import now as _now
from clusters.backends.local.resources import LocalConfig, load_config
from clusters.backends.local.shell import PtyShell


class LocalBackend:
    """Backend protocol over local processes; see the module docstring for the state it keeps."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.name: str = cluster.name

    @property
    def state_dir(self) -> Path:
        return Path(settings.EASYAI_LOCAL_STATE_DIR) / self.name

    @property
    def records(self) -> RecordStore:
        return RecordStore(self.state_dir)

    @property
    def storage_root(self) -> Path:
        return Path(settings.EASYAI_STORAGE_ROOT)

    def config(self) -> LocalConfig:
        return load_config(self.name, getattr(self.cluster, "settings", None) or {}, settings.EASYAI_STOP_GRACE)

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
        return launch.visible(self.storage_root, job, task)

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
            working_dir = self.working_dir(job, task)
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
        problems += launch.toolbox_problems(job)
        total = placement.Demand(config.capacity.cpu_milli, config.capacity.memory_bytes, len(config.capacity.gpus))
        problems += placement.too_big(self._need(job), total)
        return problems

    def render(self, job: JobDescription) -> list[dict[str, Any]]:
        """The processes submit would start; ports and GPU ids are chosen only at placement."""
        return launch.plan(self, job)

    def submit(self, job: JobDescription) -> None:
        problems = self.check(job)
        if problems:
            raise BackendRejected("; ".join(problems))
        with self.records.locked():
            if self.records.load(job.job_id) is not None:
                return  # idempotent: a repeated submit of the same job creates nothing
            self.records.save(new_record(job))
            passes.run_pass(self)

    def observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        with self.records.locked():
            records = passes.run_pass(self)
        return {
            job_id: reading.observation(self.records, job_id, records.get(job_id) or self.records.load(job_id))
            for job_id in job_ids
        }

    def stop(self, job_id: str) -> None:
        """SIGTERM to every task's process group, SIGKILL to what is left after the grace period."""
        grace = self.config().stop_grace
        with self.records.locked():
            record = self.records.load(job_id)
            if record is None or record["status"] == ENDED:
                return
            if record["status"] == WAITING:
                record["status"] = ENDED
                record["outcome"] = {"state": ObservedState.STOPPED, "reason": "stopped", "message": "", "at": _now()}
                record["finished_at"] = record["outcome"]["at"]
                self.records.save(record)
                return
            if record["outcome"] is None:
                record["outcome"] = {"state": ObservedState.STOPPED, "reason": "stopped", "message": "", "at": _now()}
            launch.begin_stop(self.records, record, grace)
            self.records.save(record)
        # Wait without the lock, so other workers' passes go on meanwhile.
        deadline = (record["stop"] or {}).get("deadline", _now() + grace)
        while _now() < deadline and not reading.all_ended(self.records, record):
            time.sleep(0.05)
        if not reading.all_ended(self.records, record):
            launch.kill_tasks(self.records, record)
            until = _now() + SUPERVISOR_KILL_AFTER_S
            while _now() < until and not reading.all_ended(self.records, record):
                time.sleep(0.05)
        with self.records.locked():
            latest = self.records.load(job_id)
            if latest is not None and latest["status"] != ENDED and latest.get("stop"):
                latest["stop"]["killed_at"] = latest["stop"].get("killed_at") or _now()
                self.records.save(latest)
            passes.run_pass(self)

    def delete(self, job_id: str) -> None:
        with self.records.locked():
            record = self.records.load(job_id)
            if record is not None and record["status"] != ENDED:
                # Called after the job's logs are saved: nothing of it may keep running.
                for name in record["tasks"]:
                    if self.records.task_dir(job_id, name).is_dir():
                        (self.records.task_dir(job_id, name) / "stop").touch()
                launch.kill_tasks(self.records, record, supervisors=True)
            launch.kill_shells(self.records, job_id, record)
            launch.drop_shm(self.state_dir, self.name, job_id)
            self.records.job_file(job_id).unlink(missing_ok=True)
            self.records.job_file(job_id, ended=True).unlink(missing_ok=True)
            shutil.rmtree(self.state_dir / "tasks" / job_id, ignore_errors=True)
            passes.run_pass(self)

    def capacity(self) -> Capacity:
        config = self.config()
        with self.records.locked():
            records = passes.run_pass(self, config)
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

    def usage(self, job_ids: list[str]) -> list[TaskUsage]:
        """Each running task's process tree: CPU seconds, resident memory, GPUs (usage.py); reads, no lock."""
        return usage.usage(self.records, job_ids)

    def read_log(self, job_id: str, task_name: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int]:
        return reading.read_log(self.records, self.storage_root, job_id, task_name, offset, limit)

    def follow_log(self, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
        yield from reading.follow_log(self.records, self.storage_root, job_id, task_name, offset)

    def summary_place(self, job_id: str, task_name: str, stored: str) -> str:
        return stored  # the sandbox shows it where it lies

    def provision_team(self, team: TeamDescription) -> None:
        """Nothing to provision on this host: a team has no namespace, quota object or queue here."""

    def open_shell(self, job_id: str, task_name: str, command: list[str] | None = None) -> PtyShell:
        return shell.open_shell(self, job_id, task_name, command)

    @property
    def tools_dir(self) -> Path:
        """The tools folder every task sees read-only (clusters/backends/local/tools.py); made on first use."""
        return self.state_dir / "tools"

    def open_ssh(self, job_id: str, task_name: str, keys: list[str]) -> shell.StreamSession:
        return shell.open_ssh(self, job_id, task_name, keys)

    def release_hold(self, job_id: str) -> None:
        launch.release_hold(self, job_id)

    def working_dir(self, job: JobDescription, task: TaskDescription) -> str:
        return task.working_dir or str(storage.personal_workspace(self.storage_root, job.owner))

    def task_log(self, job: JobDescription, task: TaskDescription) -> str:
        """The task's log file, as the description gives it (the layout's for one recorded before it did)."""
        return task.log_path or str(storage.task_log_path(self.storage_root, job.job_id, task.name))

    def _need(self, job: JobDescription) -> placement.Demand:
        need = placement.Demand()
        for task in job.tasks:
            need += placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
        return need


def _platform_admin(username: str) -> bool:
    """Whether the job's owner is a platform admin: the one who may still run jobs on an unisolated host."""
    from django.contrib.auth import get_user_model

    from teams import permissions

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    return user is not None and permissions.is_platform_admin(user)
