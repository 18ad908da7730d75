"""What a local job's running tasks use: CPU seconds and resident memory of each task's whole process tree
(psutil), and GPU utilisation and memory per process (nvidia-ml-py) where this host has NVIDIA GPUs.

A task's processes are its supervisor's descendants, the supervisor excepted: the task's main process (a
process group of its own, in the supervisor's session), whatever it started, in or out of its session (setsid
moves a process to a new session, not to a new parent), and the orphans the supervisor adopts as their
subreaper. A sandboxed task's processes are the sandbox's (bwrap's) descendants, seen from here by their
host pids. The supervisor's pid is checked against its start time, so a reused pid is never measured.

One walk over the host's processes serves every task of the pass: its cost grows with the processes on the
host, not with the number of tasks times processes.

CPU is a counter (user + system seconds of the live processes, plus the children they reaped, as cAdvisor's
``container_cpu_usage_seconds_total``); the sampler turns two readings into cores. A process that ends and is
reaped by one of the task's processes keeps its seconds in the count; one that ends unreaped, or reaped by the
supervisor at the very end, takes its seconds with it, and the counter falls back: the sampler counts that as
a reset, as Prometheus's rate() does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from clusters.backends.base import TaskUsage
from clusters.backends.local.proc import is_alive, read_json
from clusters.backends.local.records import HOLDING, RecordStore

log = logging.getLogger(__name__)

# The container a pod of the framework runs its task in (the training operator's default names), so that the
# labels of a local task's usage are those cAdvisor gives a pod of the same job.
_CONTAINERS = {"pytorch": "pytorch", "tensorflow": "tensorflow", "mpi": "mpi", "xgboost": "xgboost", "paddle": "paddle"}
_SINGLE_POD = ("notebook", "tensorboard", "app")  # rendered as one plain pod named after the job


def pod_labels(description: dict[str, Any], role: str, index: int) -> dict[str, str]:
    """namespace, pod, container as on Kubernetes (manifests/names.py: namespace_name, pod_name)."""
    job_id, framework = description["job_id"], description.get("framework", "")
    pod = job_id if framework in _SINGLE_POD else f"{job_id}-{role}-{index}"
    return {"namespace": description["team"], "pod": pod, "container": _CONTAINERS.get(framework, "main")}


@dataclass
class _Tree:
    """One task's processes this pass."""

    root: int  # the supervisor (not counted itself)
    pids: list[int] = field(default_factory=list)


def _running_tasks(store: RecordStore, job_ids: Iterable[str]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(record, task name, task record) of every launched process task of these jobs that holds resources."""
    found = []
    for job_id in job_ids:
        record = store.load(job_id)
        if record is None or record["status"] not in HOLDING:
            continue
        for name, task in record["tasks"].items():
            if task.get("process") and not task.get("skipped") and task.get("launched_at"):
                found.append((record, name, task))
    return found


def _supervisor(store: RecordStore, job_id: str, name: str, task: dict[str, Any]) -> int | None:
    task_dir = store.task_dir(job_id, name)
    if (task_dir / "exit.json").exists():
        return None  # ended: nothing of it runs
    pid, starttime = task.get("supervisor_pid"), task.get("supervisor_start")
    if not pid:
        found = read_json(task_dir / "supervisor.json") or {}
        pid, starttime = found.get("pid"), found.get("starttime")
    return pid if pid and is_alive(pid, starttime) else None


def _host_processes() -> tuple[dict[int, list[int]], dict[int, psutil.Process]]:
    """Parent pid -> child pids, and the Process objects, of every process on the host: one walk of /proc.

    psutil keeps its Process objects from one walk to the next, so the tasks' own are not made again."""
    children: dict[int, list[int]] = {}
    processes: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(proc.pid)
            processes[proc.pid] = proc
    return children, processes


def _descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _tree_figures(pids: list[int], processes: dict[int, psutil.Process]) -> tuple[float, int]:
    """(CPU seconds, resident bytes) of these processes; ones that ended meanwhile count nothing."""
    cpu, rss = 0.0, 0
    for pid in pids:
        proc = processes.get(pid)
        if proc is None:
            continue
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                memory = proc.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
    return cpu, rss


def usage(store: RecordStore, job_ids: list[str]) -> list[TaskUsage]:
    """One reading per running process task of these jobs (see the module docstring)."""
    tasks = _running_tasks(store, job_ids)
    if not tasks:
        return []
    children, processes = _host_processes()
    gpus = gpu_usage()
    readings = []
    for record, name, task in tasks:
        root = _supervisor(store, record["job_id"], name, task)
        if root is None:
            continue
        pids = _descendants(root, children)
        if not pids:
            continue
        at = datetime.now(UTC)
        cpu, rss = _tree_figures(pids, processes)
        role, _, index = name.rpartition("-")
        reading = TaskUsage(
            job_id=record["job_id"],
            task=name,
            at=at,
            memory_bytes=rss,
            cpu_seconds_total=cpu,
            labels=pod_labels(record["description"], role, int(index) if index.isdigit() else 0),
        )
        if gpus:
            mine = [gpus[pid] for pid in pids if pid in gpus]
            if mine or task.get("gpu_ids"):
                utils = [u for u, _m in mine if u is not None]
                reading.gpu_util = sum(utils) if utils else (0.0 if task.get("gpu_ids") else None)
                reading.gpu_memory_bytes = sum(m for _u, m in mine)
                if reading.gpu_util is not None and task.get("gpu_ids"):
                    # Per-process SM shares add up per device; the task's figure is the mean over its GPUs.
                    reading.gpu_util = min(100.0, reading.gpu_util / len(task["gpu_ids"]))
        readings.append(reading)
    return readings


# --- GPUs -----------------------------------------------------------------------------------------

_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"ready": None, "seen": {}}  # ready: None (not tried), True, False (no GPUs here)


def _nvml():
    """pynvml, initialised once per process; None where there is no NVIDIA driver or library (checked once)."""
    with _nvml_lock:
        if _nvml_state["ready"] is False:
            return None
        try:
            import pynvml
        except ImportError:
            _nvml_state["ready"] = False
            return None
        if _nvml_state["ready"] is None:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                log.info("no GPU usage on this host: %s", exc)
                _nvml_state["ready"] = False
                return None
            _nvml_state["ready"] = True
        return pynvml


def gpu_usage() -> dict[int, tuple[float | None, int]]:
    """pid -> (SM utilisation %, GPU memory bytes) of every process on this host's GPUs; {} without GPUs.

    Utilisation comes from NVML's per-process samples since the last call on that device (None where the
    driver keeps none); memory from the compute processes' used memory, summed over devices.
    """
    nvml = _nvml()
    if nvml is None:
        return {}
    found: dict[int, tuple[float | None, int]] = {}
    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as exc:
        log.warning("GPU usage unavailable: %s", exc)
        return {}
    for i in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError as exc:
            log.warning("GPU %s: %s", i, exc)
            continue
        utils: dict[int, float] = {}
        last_seen = _nvml_state["seen"].get(i, 0)
        try:
            for sample in nvml.nvmlDeviceGetProcessUtilization(handle, last_seen):
                utils[sample.pid] = utils.get(sample.pid, 0.0) + float(sample.smUtil)
                last_seen = max(last_seen, sample.timeStamp)
            _nvml_state["seen"][i] = last_seen
        except nvml.NVMLError:
            pass  # no samples since last time, or not supported on this device
        for proc in procs:
            used = proc.usedGpuMemory if isinstance(proc.usedGpuMemory, int) else 0
            util, memory = found.get(proc.pid, (None, 0))
            if proc.pid in utils:
                util = (util or 0.0) + utils[proc.pid]
            found[proc.pid] = (util, memory + used)
    return found
