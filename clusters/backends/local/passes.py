"""One pass over a local cluster's jobs, under the records' lock: bring every record up to date with its
processes (an outcome, a stop's escalation, the end), then place waiting jobs (placement.py decides; preempted
jobs are stopped, placed ones started). submit(), observe(), stop(), delete() and capacity() each run one."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

from clusters.backends.base import ObservedState
from clusters.backends.local import launch, observe, placement, sandbox
from clusters.backends.local.proc import kill_session
from clusters.backends.local.records import ENDED, ENDING, HOLDING, WAITING
from clusters.backends.local.records import now as _now
from clusters.backends.local.resources import LocalConfig

if TYPE_CHECKING:
    from clusters.backends.local.backend import LocalBackend

SUPERVISOR_KILL_AFTER_S = 5.0  # after SIGKILL to a task, how long its supervisor gets to record the exit


def run_pass(backend: LocalBackend, config: LocalConfig | None = None) -> dict[str, dict[str, Any]]:
    """Under the lock: bring every record up to date with its processes, then place waiting jobs."""
    config = config or backend.config()
    records = backend.records.load_all()
    for record in records.values():
        if record["status"] in HOLDING and refresh(backend, record, config):
            backend.records.save(record)
    place(backend, records, config)
    return records


def refresh(backend: LocalBackend, record: dict[str, Any], config: LocalConfig) -> bool:
    """Fold the tasks' files into the record: outcome, stop escalation, end. True when it changed."""
    before = repr(record)
    job_id = record["job_id"]
    runtimes = observe.task_runtimes(backend.records, record)
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

    # A task held by keep_failed has failed as far as its job goes (its command ended non-zero); its process
    # stays, with its shells, until the hold ends. One held by pause_on_failure still counts as running.
    kept = {name: rt for name, rt in runtimes.items() if rt.running and rt.held and rt.held[0] == "keep_failed"}
    if record["outcome"] is None:
        failures = [(rt.finished_at or 0, name, rt) for name, rt in runtimes.items() if rt.ended and not rt.ok]
        failures += [(rt.held_since or _now(), name, rt) for name, rt in kept.items()]
        if failures:
            at, name, rt = min(failures)
            if rt.lost:
                reason = "lost"
                message = f"task {name} ended without an exit code (its supervisor vanished; was the host restarted?)"
            else:
                reason = "exit_code"
                code = rt.held[1] if rt.running and rt.held else rt.exit_code
                sig = rt.signal if rt.ended else sandbox.signal_of(code or 0)
                how = (
                    f"was killed by {observe.signal_name(sig)} (exit code {code})"
                    if sig
                    else f"exited with code {code}"
                )
                message = f"task {name} {how}"
                tail = observe.log_tail(backend.records, backend.storage_root, job_id, name)
                if tail:
                    message += f": {tail}"
            record["outcome"] = {
                "state": ObservedState.FAILED,
                "reason": reason,
                "message": message,
                "at": at or _now(),
                "task": name,
            }
            # Like the operators: one failed task fails the job, and its other tasks are stopped; held ones stay.
            if not all(r.ended for r in runtimes.values()):
                held = sorted(n for n, r in runtimes.items() if r.running and r.held)
                launch.begin_stop(backend.records, record, config.stop_grace, spare=held)
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
            launch.kill_shells(backend.records, job_id, record)
            launch.drop_shm(backend.state_dir, backend.name, job_id)
        else:
            record["status"] = ENDING
            stop = record.get("stop") or {}
            spare = stop.get("spare")  # held tasks: they end with their hold, not at the stop's deadline
            if stop and _now() >= stop.get("deadline", 0) and not stop.get("killed_at"):
                launch.kill_tasks(backend.records, record, spare=spare)
                stop["killed_at"] = _now()
            elif stop.get("killed_at") and _now() >= stop["killed_at"] + SUPERVISOR_KILL_AFTER_S:
                # A supervisor that does not finish is stuck.
                launch.kill_tasks(backend.records, record, supervisors=True, spare=spare)
    return repr(record) != before


def place(backend: LocalBackend, records: dict[str, dict[str, Any]], config: LocalConfig) -> None:
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
            [(name, placement.Demand(t["cpu_milli"], t["memory_bytes"], t["gpu"])) for name, t in r["tasks"].items()],
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
        launch.begin_stop(backend.records, victim, config.stop_grace)
        victim["status"] = ENDING
        backend.records.save(victim)
    for job_id, gpu_ids in decision.start.items():
        record = records[job_id]
        try:
            launch.start(backend, record, gpu_ids, taken_ports, config)
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
                launch.begin_stop(backend.records, record, 0)
                record["status"] = ENDING
            else:
                record["status"] = ENDED
                record["finished_at"] = record["outcome"]["at"]
                launch.drop_shm(backend.state_dir, backend.name, job_id)
            backend.records.save(record)
    for job_id, message in decision.waiting.items():
        record = records[job_id]
        if record["message"] != message:
            record["message"] = message
            backend.records.save(record)
