"""Gang placement in priority order, with optional preemption. Pure: plain data in, a plan out.

The queue is strict: waiting jobs are taken in order (high, normal, low; first
come first served within a priority) and the first that does not fit blocks
every job behind it, so a stream of small jobs never starves a big or a
higher-priority one. A job that could not fit even on an empty host does not
block (``check`` refuses such jobs; this covers a capacity lowered later).

With preemption on, a high-priority job that does not fit stops the newest
normal- and low-priority running jobs until it fits (or stops none, when even
all of them would not make room). Normal and low jobs never preempt: they wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from clusters.backends.contract.quantity import format_cpu, format_memory

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
# Only a high-priority job may stop running jobs to fit, and only ones of lower priority (normal and low).
PREEMPTING_PRIORITY = "high"


def priority_rank(priority: str) -> int:
    return PRIORITY_RANK.get(priority, PRIORITY_RANK["normal"])


@dataclass(frozen=True)
class Demand:
    cpu_milli: int = 0
    memory_bytes: int = 0
    gpu: int = 0

    def __add__(self, other: Demand) -> Demand:
        return Demand(self.cpu_milli + other.cpu_milli, self.memory_bytes + other.memory_bytes, self.gpu + other.gpu)

    def __sub__(self, other: Demand) -> Demand:
        return Demand(self.cpu_milli - other.cpu_milli, self.memory_bytes - other.memory_bytes, self.gpu - other.gpu)

    def fits_in(self, room: Demand) -> bool:
        return self.cpu_milli <= room.cpu_milli and self.memory_bytes <= room.memory_bytes and self.gpu <= room.gpu


def accounted(cpu_milli: int, memory_bytes: int, gpu: int, oversell: float) -> Demand:
    """What a task holds in the accounting: its limits divided by the oversell ratio; GPUs are never oversold."""
    ratio = oversell if oversell and oversell > 0 else 1.0
    return Demand(math.ceil(cpu_milli / ratio), math.ceil(memory_bytes / ratio), gpu)


def shortage(need: Demand, free: Demand) -> str:
    """Why ``need`` does not fit in ``free``, in words ("" when it fits)."""
    if need.cpu_milli > free.cpu_milli:
        return f"needs {format_cpu(need.cpu_milli)} CPU, {format_cpu(max(free.cpu_milli, 0))} free"
    if need.memory_bytes > free.memory_bytes:
        return f"needs {format_memory(need.memory_bytes)} memory, {format_memory(max(free.memory_bytes, 0))} free"
    if need.gpu > free.gpu:
        return f"needs {need.gpu} GPU, {max(free.gpu, 0)} free"
    return ""


def too_big(need: Demand, total: Demand) -> list[str]:
    """Why ``need`` could never fit on this host, one line per resource."""
    problems = []
    if need.cpu_milli > total.cpu_milli:
        problems.append(
            f"needs {format_cpu(need.cpu_milli)} CPU but this host has {format_cpu(total.cpu_milli)} in all"
        )
    if need.memory_bytes > total.memory_bytes:
        problems.append(
            f"needs {format_memory(need.memory_bytes)} memory but this host has "
            f"{format_memory(total.memory_bytes)} in all"
        )
    if need.gpu > total.gpu:
        problems.append(f"needs {need.gpu} GPU but this host has {total.gpu} in all")
    return problems


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class WaitingJob:
    job_id: str
    priority: str
    created_at: float
    seq: int  # submit order, the tie-breaker
    tasks: list[tuple[str, Demand]]  # task name and accounted demand, in the job's order

    @property
    def need(self) -> Demand:
        total = Demand()
        for _, demand in self.tasks:
            total += demand
        return total

    def order_key(self) -> tuple[int, float, int]:
        return (priority_rank(self.priority), self.created_at, self.seq)


@dataclass
class PlacedJob:
    job_id: str
    priority: str
    started_at: float
    holds: Demand
    ending: bool  # being stopped already: its resources are on their way back


@dataclass
class Plan:
    start: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # job id -> task name -> GPU ids
    preempt: list[str] = field(default_factory=list)  # job ids to stop, newest first
    waiting: dict[str, str] = field(default_factory=dict)  # job id -> why it waits


def plan(
    waiting: list[WaitingJob],
    placed: list[PlacedJob],
    total: Demand,
    free_gpu_ids: list[str],
    *,
    preemption: bool = False,
) -> Plan:
    result = Plan()
    held = Demand()
    for job in placed:
        held += job.holds
    free = Demand(total.cpu_milli - held.cpu_milli, total.memory_bytes - held.memory_bytes, len(free_gpu_ids))
    gpu_pool = list(free_gpu_ids)
    incoming = Demand()
    for job in placed:
        if job.ending:
            incoming += job.holds
    candidates = sorted(
        (j for j in placed if not j.ending), key=lambda j: (j.started_at, j.job_id), reverse=True
    )  # newest first: preemption costs the least work

    blocked: list[WaitingJob] = []
    for job in sorted(waiting, key=WaitingJob.order_key):
        need = job.need
        impossible = too_big(need, total)
        if impossible:
            result.waiting[job.job_id] = impossible[0]
            continue
        if blocked:
            rank = priority_rank(job.priority)
            higher = sum(1 for b in blocked if priority_rank(b.priority) < rank)
            earlier = len(blocked) - higher
            parts = []
            if higher:
                parts.append(_count(higher, "higher-priority job"))
            if earlier:
                parts.append(_count(earlier, "earlier job"))
            result.waiting[job.job_id] = "waiting behind " + " and ".join(parts)
            blocked.append(job)
            continue
        missing = shortage(need, free)
        if not missing:
            assignment: dict[str, list[str]] = {}
            for name, demand in job.tasks:
                assignment[name], gpu_pool = gpu_pool[: demand.gpu], gpu_pool[demand.gpu :]
            result.start[job.job_id] = assignment
            free -= need
            continue
        message = missing
        if preemption:
            if need.fits_in(free + incoming):
                message = f"{missing}; waiting for stopping jobs to end"
            elif job.priority == PREEMPTING_PRIORITY:
                room = free + incoming
                chosen: list[PlacedJob] = []
                for victim in candidates:
                    if victim.priority == PREEMPTING_PRIORITY or victim.job_id in result.preempt:
                        continue
                    chosen.append(victim)
                    room += victim.holds
                    if need.fits_in(room):
                        break
                if need.fits_in(room):
                    result.preempt += [v.job_id for v in chosen]
                    for victim in chosen:
                        incoming += victim.holds
                    message = f"{missing}; preempting {_count(len(chosen), 'lower-priority job')}"
        result.waiting[job.job_id] = message
        blocked.append(job)
    return result
