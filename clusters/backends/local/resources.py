"""What this host offers, and the cluster's settings that override it."""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusters.backends.base import BackendUnavailable
from clusters.backends.contract.quantity import parse_cpu, parse_memory


@dataclass(frozen=True)
class Gpu:
    id: str  # what CUDA_VISIBLE_DEVICES gets: the nvidia-smi index, or the id an admin configured
    uuid: str = ""
    memory_bytes: int = 0


@dataclass(frozen=True)
class HostCapacity:
    cpu_milli: int
    memory_bytes: int
    gpus: tuple[Gpu, ...]


@dataclass(frozen=True)
class LocalConfig:
    capacity: HostCapacity
    preemption: bool
    stop_grace: float
    readonly_data_dir: bool = False  # data_dir read-only in the task's own mount namespace (see isolation.py)
    # Task isolation (see sandbox.py): on unless an operator turns it off.
    isolation: bool = True
    bwrap: str = "bwrap"  # the bubblewrap program: a name on PATH or a path
    sandbox_user: int = 65534
    sandbox_group: int = 65534
    sandbox_read_only: tuple[str, ...] = ()  # more host paths every task sees read-only
    # Where tasks cannot be isolated, only platform admins may submit, unless this lets everyone.
    allow_unisolated: bool = False


def host_cpu_milli() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    # A container's CPU quota (cgroup v2) may be lower than the CPUs it can be scheduled on.
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores * 1000


def host_memory_bytes() -> int:
    total = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


@functools.lru_cache(maxsize=1)
def host_gpus() -> tuple[Gpu, ...]:
    """GPUs that nvidia-smi reports; asked once per process, since a host's GPUs do not come and go."""
    if not shutil.which("nvidia-smi"):
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_nvidia_smi(out)


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        memory = 0
        if len(parts) > 2:
            number = parts[2].split()[0] if parts[2] else ""
            memory = int(float(number) * 2**20) if number.replace(".", "", 1).isdigit() else 0
        gpus.append(Gpu(id=parts[0], uuid=parts[1], memory_bytes=memory))
    return tuple(gpus)


def _setting(value: Any) -> Any:
    """An operator's capacity setting as the parser reads it: spaces around a quantity are forgiven."""
    return value.strip() if isinstance(value, str) else value


def _bad(cluster_name: str, key: str, problem: str) -> BackendUnavailable:
    return BackendUnavailable(f"cluster {cluster_name}: settings.{key}: {problem}")


def load_config(cluster_name: str, settings: dict[str, Any], default_grace: float) -> LocalConfig:
    """Host capacity with the cluster's overrides; a bad setting marks the cluster unhealthy, with the key named."""
    settings = settings or {}
    try:
        cpu = (
            parse_cpu(_setting(settings["cpu"]), round_down=True)
            if settings.get("cpu") is not None
            else host_cpu_milli()
        )
    except ValueError as exc:
        raise _bad(cluster_name, "cpu", str(exc))
    try:
        memory = (
            parse_memory(_setting(settings["memory"]), round_down=True)
            if settings.get("memory") is not None
            else host_memory_bytes()
        )
    except ValueError as exc:
        raise _bad(cluster_name, "memory", str(exc))

    gpus_setting = settings.get("gpus")
    if gpus_setting is None:
        gpus = host_gpus()
    elif isinstance(gpus_setting, bool):
        raise _bad(cluster_name, "gpus", "a count or a list of GPU ids, not a boolean")
    elif isinstance(gpus_setting, int):
        if gpus_setting < 0:
            raise _bad(cluster_name, "gpus", "must not be negative")
        detected = host_gpus()
        gpus = (
            detected[:gpus_setting]
            if len(detected) >= gpus_setting
            else tuple(Gpu(id=str(i)) for i in range(gpus_setting))
        )
    elif isinstance(gpus_setting, list) and all(
        isinstance(g, int | str) and not isinstance(g, bool) for g in gpus_setting
    ):
        ids = [str(g) for g in gpus_setting]
        if len(set(ids)) != len(ids):
            raise _bad(cluster_name, "gpus", "lists a GPU twice")
        gpus = tuple(Gpu(id=g) for g in ids)
    else:
        raise _bad(cluster_name, "gpus", "a count or a list of GPU ids such as [0, 1]")

    preemption = settings.get("preemption", False)
    if not isinstance(preemption, bool):
        raise _bad(cluster_name, "preemption", "true or false")
    grace = settings.get("stop_grace", default_grace)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise _bad(cluster_name, "stop_grace", "seconds, a number not below 0")
    readonly_data_dir = settings.get("readonly_data_dir", False)
    if not isinstance(readonly_data_dir, bool):
        raise _bad(cluster_name, "readonly_data_dir", "true or false")
    return LocalConfig(
        HostCapacity(cpu, memory, gpus),
        preemption,
        float(grace),
        readonly_data_dir,
        **_isolation(cluster_name, settings),
    )


# What a cluster's settings mean when they do not say: tasks isolated, and an unisolated cluster for admins only.
ISOLATION_DEFAULTS = {"isolation": True, "allow_unisolated": False}


def _isolation(cluster_name: str, settings: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, default in ISOLATION_DEFAULTS.items():
        value = settings.get(key, default)
        if not isinstance(value, bool):
            raise _bad(cluster_name, key, "true or false")
        found[key] = value
    bwrap = settings.get("bwrap", "bwrap")
    if not isinstance(bwrap, str) or not bwrap.strip() or "\0" in bwrap:
        raise _bad(cluster_name, "bwrap", "the bubblewrap program: a name on PATH or an absolute path")
    found["bwrap"] = bwrap.strip()
    user = settings.get("sandbox_user", 65534)
    if isinstance(user, bool) or not isinstance(user, int) or not 0 < user < 2**32 - 1:
        raise _bad(cluster_name, "sandbox_user", "a numeric user id other than 0 (root)")
    group = settings.get("sandbox_group", user)
    if isinstance(group, bool) or not isinstance(group, int) or not 0 < group < 2**32 - 1:
        raise _bad(cluster_name, "sandbox_group", "a numeric group id other than 0 (root)")
    found["sandbox_user"], found["sandbox_group"] = user, group
    extra = settings.get("sandbox_read_only", [])
    if not isinstance(extra, list) or not all(isinstance(p, str) and p.startswith("/") for p in extra):
        raise _bad(cluster_name, "sandbox_read_only", "a list of absolute paths")
    found["sandbox_read_only"] = tuple(extra)
    return found
