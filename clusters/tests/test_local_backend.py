"""The local backend with real processes: gang starts, outcomes, stop, queueing, preemption, env, logs, shells."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clusters.backends.base import (
    BackendError,
    BackendRejected,
    JobDescription,
    ObservedState,
)
from clusters.backends.contract import storage
from clusters.backends.local import LocalBackend, isolation, tools
from clusters.backends.local.placement import Demand, PlacedJob, WaitingJob, plan
from clusters.backends.local.records import job_from_dict
from clusters.models import Cluster
from clusters.tests.conftest import (
    GATED,
    gone,
    log_of,
    make_job,
    release,
    root,
    running_pid,
    task_pid,
    wait_for,
)
from testing.isolation import needs_sandbox

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]


# --- outcomes ------------------------------------------------------------------------------------


def test_two_task_pytorch_gang_succeeds_with_logs_and_outputs_where_the_conventions_say(local):
    backend = local()
    script = (
        "import os, pathlib;"
        "rank, size = os.environ['RANK'], os.environ['WORLD_SIZE'];"
        "print(f'rank {rank} of {size} in', os.getcwd());"
        "pathlib.Path(os.environ['model_dir'], f'rank-{rank}.txt').write_text(os.environ['GREETING'])"
    )
    job = make_job([("master", 1, [PY, "-c", script]), ("worker", 1, [PY, "-c", script])], framework="pytorch")
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert obs.state == ObservedState.SUCCEEDED, obs.message
    assert [(t.role, t.state, t.exit_code) for t in obs.tasks] == [
        ("master", ObservedState.SUCCEEDED, 0),
        ("worker", ObservedState.SUCCEEDED, 0),
    ]
    assert obs.started_at is not None and obs.finished_at is not None and obs.finished_at >= obs.started_at
    assert all(t.started_at and t.finished_at and t.pod_name.startswith("pid ") for t in obs.tasks)
    workspace = storage.personal_workspace(root(), "alice")
    assert log_of(job, "master-0") == f"rank 0 of 2 in {workspace}\n"
    assert log_of(job, "worker-0") == f"rank 1 of 2 in {workspace}\n"
    model_dir = storage.output_dir(root(), job.job_id, "model_dir")
    assert sorted(p.name for p in model_dir.iterdir()) == ["rank-0.txt", "rank-1.txt"]
    assert (model_dir / "rank-1.txt").read_text() == "hello"
    for task in ("master-0", "worker-0"):
        assert storage.output_dir(root(), job.job_id, "summary_dir", task).is_dir()
    assert (root() / "data" / "alice").is_dir()


def test_a_task_logs_where_its_description_says(local):
    backend = local()
    job = make_job([("main", 1, "echo kept")])
    elsewhere = root() / "elsewhere" / "main-0.log"
    job.tasks[0].log_path = str(elsewhere)
    backend.submit(job)

    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    assert elsewhere.read_text() == "kept\n"
    assert backend.read_log(job.job_id, "main-0") == (b"kept\n", 5)


def test_a_job_recorded_before_descriptions_carried_places_and_a_log_path_runs_where_the_layout_says(local):
    """A local job's record from an earlier version has neither: the storage layout gives them, as it did."""
    backend = local()
    job = make_job([("main", 1, 'echo "$GREETING" > "$model_dir/out"; echo done')])
    for task in job.tasks:
        task.places, task.log_path = [], ""
    backend.submit(job)

    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    assert log_of(job, "main-0") == "done\n"
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "out").read_text() == "hello\n"
    assert storage.output_dir(root(), job.job_id, "summary_dir", "main-0").is_dir()


def test_a_description_reads_back_from_its_record_whole():
    job = make_job([("master", 1, "true"), ("worker", 2, "true")], framework="pytorch")
    assert job.tasks[0].places and job.tasks[0].log_path
    assert job_from_dict(json.loads(json.dumps(job.to_dict()))) == job


def test_a_failing_task_fails_the_job_with_its_exit_code_and_log_tail_and_stops_the_others(local):
    backend = local()
    # The worker fails once the master is up, so the master is running when the job fails.
    master = 'touch "$share_dir/master-up"; exec sleep 30'
    failing = 'until [ -e "$share_dir/master-up" ]; do sleep 0.02; done; for i in $(seq 1 30); do echo "line $i"; done; exit 3'
    job = make_job([("master", 1, master), ("worker", 1, failing)])
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert obs.state == ObservedState.FAILED
    assert obs.reason == "exit_code"
    expected_tail = "\n".join(f"line {i}" for i in range(11, 31))
    assert obs.message == f"task worker-0 exited with code 3: {expected_tail}"
    worker = obs.tasks[1]
    assert (worker.state, worker.exit_code) == (ObservedState.FAILED, 3)
    master_pid = task_pid(obs, 0)
    # The master is stopped because its job failed; it ends STOPPED, not FAILED. Its supervisor reaps it
    # first and records its end just after, so the observation catches up a moment after the pid is gone.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        obs = backend.observe([job.job_id])[job.job_id]
        if obs.tasks[0].state != ObservedState.RUNNING:
            break
        time.sleep(0.05)
    assert gone(master_pid)
    assert obs.state == ObservedState.FAILED
    assert obs.tasks[0].state == ObservedState.STOPPED
    assert backend.capacity().free_cpu_milli == 2000


def test_a_task_killed_by_a_signal_fails_with_128_plus_the_signal(local):
    backend = local()
    job = make_job([("main", 1, "kill -9 $$")])
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert (obs.state, obs.reason, obs.tasks[0].exit_code) == (ObservedState.FAILED, "exit_code", 137)
    assert obs.message.startswith("task main-0 was killed by SIGKILL (exit code 137)")


def test_a_command_that_does_not_exist_fails_with_127_and_says_so_in_the_log(local):
    backend = local()
    job = make_job([("main", 1, ["/no/such/program"])])
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert (obs.state, obs.tasks[0].exit_code) == (ObservedState.FAILED, 127)
    # The task wrapper's shell says so where busybox is (tools.can_wrap()), the supervisor where it is not.
    assert "/no/such/program: not found" in obs.message or "cannot start '/no/such/program'" in obs.message
    assert log_of(job, "main-0").strip() in obs.message


# --- stop ---------------------------------------------------------------------------------------------


def host_pid(task: int, pid_inside: int) -> int:
    """The host's pid of a process that a sandboxed task knows as ``pid_inside`` (its own PID namespace)."""
    namespace = os.readlink(f"/proc/{host_pid_of_pid1(task)}/ns/pid")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            same = os.readlink(entry / "ns" / "pid") == namespace
        except OSError:
            continue
        nspids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if same and len(nspids) > 1 and nspids[-1] == str(pid_inside):
            return int(entry.name)
    raise AssertionError(f"no process {pid_inside} in the sandbox of {task}")


def host_pid_of_pid1(task: int) -> int:
    """The sandbox's pid 1: the child of the task's outer bwrap."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(task):
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError(f"task {task} has no sandbox")


@pytest.mark.parametrize("isolated", [pytest.param(True, marks=needs_sandbox), False], ids=["sandboxed", "unisolated"])
def test_stop_kills_the_whole_process_tree_even_children_that_ignore_sigterm_or_left_the_session(local, isolated):
    backend = local(stop_grace=0.5, isolation=isolated, allow_unisolated=True)
    command = (
        # SIGTERM ignored by the shell and, inherited, by its children: only SIGKILL ends them.
        'trap "" TERM; sleep 1000 & echo $! > "$share_dir/bg.pid"; '
        'setsid sleep 1000 & echo $! > "$share_dir/setsid.pid"; '
        "while :; do sleep 0.05; done"
    )
    job = make_job([("main", 1, command)])
    backend.submit(job)
    wait_for(backend, job.job_id, states=(ObservedState.RUNNING,))
    share = storage.output_dir(root(), job.job_id, "share_dir")
    deadline = time.monotonic() + 5
    while not (share / "setsid.pid").exists() or not (share / "setsid.pid").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    task = running_pid(backend, job.job_id)
    inside = [int((share / "bg.pid").read_text()), int((share / "setsid.pid").read_text())]
    # A sandboxed task has a PID namespace of its own: the pids it wrote are its own, not the host's.
    pids = [task, *([host_pid(task, p) for p in inside] if isolated else inside)]
    assert not any(gone(pid) for pid in pids)

    started = time.monotonic()
    backend.stop(job.job_id)

    assert time.monotonic() - started < 5
    assert all(gone(pid) for pid in pids), [p for p in pids if not gone(p)]
    obs = backend.observe([job.job_id])[job.job_id]
    assert (obs.state, obs.reason) == (ObservedState.STOPPED, "stopped")
    assert obs.tasks[0].state == ObservedState.STOPPED
    backend.stop(job.job_id)  # idempotent
    backend.stop("j-unknown")


def test_stopping_a_waiting_job_ends_it_without_starting_it(local):
    backend = local(cpu=1)
    blocker = make_job([("main", 1, GATED)])
    waiting = make_job([("main", 1, "echo should-not-run")])
    backend.submit(blocker)
    backend.submit(waiting)

    backend.stop(waiting.job_id)
    release(blocker)
    wait_for(backend, blocker.job_id)

    obs = backend.observe([waiting.job_id])[waiting.job_id]
    assert (obs.state, obs.reason) == (ObservedState.STOPPED, "stopped")
    assert not storage.task_log_path(root(), waiting.job_id, "main-0").exists()


# --- queueing, priority, preemption ----------------------------------------------------------------------


def test_a_job_that_does_not_fit_waits_saying_why_and_starts_when_another_ends(local):
    backend = local(cpu=1)
    first = make_job([("main", 1, GATED)])
    second = make_job([("main", 1, "echo second")])
    backend.submit(first)
    backend.submit(second)

    observed = backend.observe([first.job_id, second.job_id])
    assert observed[first.job_id].state == ObservedState.RUNNING
    waiting = observed[second.job_id]
    assert (waiting.state, waiting.reason, waiting.message) == (ObservedState.PENDING, "waiting", "needs 1 CPU, 0 free")
    assert waiting.tasks[0].state == ObservedState.PENDING

    release(first)

    assert wait_for(backend, first.job_id).state == ObservedState.SUCCEEDED
    assert wait_for(backend, second.job_id).state == ObservedState.SUCCEEDED
    assert log_of(second, "main-0") == "second\n"


def test_waiting_jobs_start_in_priority_order_then_first_come_first_served(local):
    backend = local(cpu=1)
    # The public workspace: the one folder that tasks of every job see (the storage root they do not).
    order_file = storage.public_workspace(root()) / "order.txt"
    order_file.parent.mkdir(parents=True, exist_ok=True)
    record = f'echo "$EASYAI_JOB_ID" >> {order_file}'
    blocker = make_job([("main", 1, GATED)])
    backend.submit(blocker)
    t0 = datetime.now(UTC)
    low = make_job([("main", 1, record)], priority="low", created_at=t0)
    normal_1 = make_job([("main", 1, record)], priority="normal", created_at=t0 + timedelta(seconds=1))
    high = make_job([("main", 1, record)], priority="high", created_at=t0 + timedelta(seconds=2))
    normal_2 = make_job([("main", 1, record)], priority="normal", created_at=t0 + timedelta(seconds=3))
    for job in (low, normal_1, high, normal_2):
        backend.submit(job)

    messages = {k: v.message for k, v in backend.observe([j.job_id for j in (low, normal_1, high, normal_2)]).items()}
    assert messages == {
        high.job_id: "needs 1 CPU, 0 free",
        normal_1.job_id: "waiting behind 1 higher-priority job",
        normal_2.job_id: "waiting behind 1 higher-priority job and 1 earlier job",
        low.job_id: "waiting behind 3 higher-priority jobs",
    }

    release(blocker)
    for job in (high, normal_1, normal_2, low):
        assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED

    assert order_file.read_text().split() == [high.job_id, normal_1.job_id, normal_2.job_id, low.job_id]


def test_preemption_stops_the_newest_lower_priority_job_when_enabled(local):
    backend = local(cpu=2, preemption=True, stop_grace=0.5)
    older = make_job([("main", 1, "sleep 1000")], priority="low")
    newer = make_job([("main", 1, "sleep 1000")], priority="low")
    backend.submit(older)
    time.sleep(0.02)
    backend.submit(newer)
    newer_pid = running_pid(backend, newer.job_id)
    urgent = make_job([("main", 1, GATED)], priority="high")

    backend.submit(urgent)
    obs = wait_for(backend, urgent.job_id, states=(ObservedState.RUNNING,), timeout=10)

    assert obs.state == ObservedState.RUNNING
    observed = backend.observe([older.job_id, newer.job_id])
    assert observed[older.job_id].state == ObservedState.RUNNING
    preempted = observed[newer.job_id]
    assert (preempted.state, preempted.reason) == (ObservedState.STOPPED, "preempted")
    assert preempted.tasks[0].state == ObservedState.STOPPED
    assert gone(newer_pid)


def test_without_preemption_a_high_priority_job_waits_for_room(local):
    backend = local(cpu=1)
    low = make_job([("main", 1, GATED)], priority="low")
    backend.submit(low)
    high = make_job([("main", 1, "true")], priority="high")
    backend.submit(high)

    for _ in range(5):
        observed = backend.observe([low.job_id, high.job_id])
        time.sleep(0.05)

    assert observed[low.job_id].state == ObservedState.RUNNING
    assert (observed[high.job_id].state, observed[high.job_id].message) == (
        ObservedState.PENDING,
        "needs 1 CPU, 0 free",
    )
    release(low)
    assert wait_for(backend, high.job_id).state == ObservedState.SUCCEEDED


def test_with_preemption_a_normal_job_waits_for_a_low_one_saying_why(local):
    backend = local(cpu=1, preemption=True)
    low = make_job([("main", 1, GATED)], priority="low")
    backend.submit(low)
    low_pid = running_pid(backend, low.job_id)
    normal = make_job([("main", 1, "echo normal")], priority="normal")
    backend.submit(normal)

    for _ in range(5):
        observed = backend.observe([low.job_id, normal.job_id])
        time.sleep(0.05)

    assert observed[low.job_id].state == ObservedState.RUNNING and not gone(low_pid)
    assert (observed[normal.job_id].state, observed[normal.job_id].message) == (
        ObservedState.PENDING,
        "needs 1 CPU, 0 free",
    )
    release(low)
    assert wait_for(backend, low.job_id).state == ObservedState.SUCCEEDED
    assert wait_for(backend, normal.job_id).state == ObservedState.SUCCEEDED
    assert log_of(normal, "main-0") == "normal\n"


def test_a_high_priority_job_preempts_normal_and_low_jobs_newest_first(local):
    backend = local(cpu=3, preemption=True, stop_grace=0.5)
    oldest = make_job([("main", 1, "sleep 1000")], priority="normal")
    middle = make_job([("main", 1, "sleep 1000")], priority="low")
    newest = make_job([("main", 1, "sleep 1000")], priority="normal")
    pids = {}
    for job in (oldest, middle, newest):
        backend.submit(job)
        pids[job.job_id] = running_pid(backend, job.job_id)
        time.sleep(0.02)
    urgent = make_job([("main", 1, GATED)], priority="high", cpu_milli=2000)

    backend.submit(urgent)

    assert wait_for(backend, urgent.job_id, states=(ObservedState.RUNNING,)).state == ObservedState.RUNNING
    observed = backend.observe([oldest.job_id, middle.job_id, newest.job_id])
    assert observed[oldest.job_id].state == ObservedState.RUNNING and not gone(pids[oldest.job_id])
    for job in (middle, newest):
        assert (observed[job.job_id].state, observed[job.job_id].reason) == (ObservedState.STOPPED, "preempted")
        assert gone(pids[job.job_id])
    release(urgent)
    assert wait_for(backend, urgent.job_id).state == ObservedState.SUCCEEDED


def test_placement_plan_preempts_only_for_high_priority_jobs_and_only_when_enabled():
    total = Demand(3000, 2**33, 0)
    one = Demand(1000, 0, 0)
    placed = [
        PlacedJob("old-low", "low", 1.0, one, ending=False),
        PlacedJob("mid-normal", "normal", 2.0, one, ending=False),
        PlacedJob("new-high", "high", 3.0, one, ending=False),
    ]

    def waiting(priority: str, cpu_milli: int) -> list[WaitingJob]:
        return [WaitingJob("incoming", priority, 9.0, 1, [("main-0", Demand(cpu_milli, 0, 0))])]

    # Newest first among the lower-priority ones; a running high-priority job is never a victim.
    assert plan(waiting("high", 1000), placed, total, [], preemption=True).preempt == ["mid-normal"]
    decision = plan(waiting("high", 2000), placed, total, [], preemption=True)
    assert decision.preempt == ["mid-normal", "old-low"]
    assert decision.waiting == {"incoming": "needs 2 CPU, 0 free; preempting 2 lower-priority jobs"}
    # Even all lower-priority jobs would not make room: nobody is stopped for nothing.
    assert plan(waiting("high", 3000), placed, total, [], preemption=True).preempt == []
    # A normal job never preempts a low one; it waits, saying why.
    decision = plan(waiting("normal", 1000), placed, total, [], preemption=True)
    assert (decision.preempt, decision.start) == ([], {})
    assert decision.waiting == {"incoming": "needs 1 CPU, 0 free"}
    assert plan(waiting("low", 1000), placed, total, [], preemption=True).preempt == []
    # Preemption off: a high-priority job waits too.
    decision = plan(waiting("high", 1000), placed, total, [], preemption=False)
    assert (decision.preempt, decision.waiting) == ([], {"incoming": "needs 1 CPU, 0 free"})


def test_oversell_divides_what_a_task_holds_in_the_accounting(local):
    backend = local(cpu=1)
    job = make_job([("worker", 2, GATED)], oversell=2.0)  # 2 x 1 CPU limits, 2 x 500m accounted
    backend.submit(job)

    assert wait_for(backend, job.job_id, states=(ObservedState.RUNNING,)).state == ObservedState.RUNNING
    assert backend.capacity().free_cpu_milli == 0
    release(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED


def test_placement_plan_never_lets_a_small_job_pass_a_blocked_one_of_higher_priority():
    total = Demand(4000, 2**33, 0)
    placed = [PlacedJob("running", "normal", 1.0, Demand(3000, 2**30, 0), ending=False)]
    waiting = [
        WaitingJob("big-high", "high", 5.0, 1, [("main-0", Demand(2000, 0, 0))]),
        WaitingJob("small-low", "low", 1.0, 2, [("main-0", Demand(500, 0, 0))]),
        WaitingJob("huge", "high", 0.5, 3, [("main-0", Demand(64000, 0, 0))]),
    ]
    decision = plan(waiting, placed, total, [])
    assert decision.start == {}
    assert decision.waiting == {
        "huge": "needs 64 CPU but this host has 4 in all",
        "big-high": "needs 2 CPU, 1 free",
        "small-low": "waiting behind 1 higher-priority job",
    }
    with_preemption = plan(waiting, placed, total, [], preemption=True)
    assert with_preemption.preempt == ["running"]


def test_stop_right_after_submit_leaves_nothing_running(local):
    backend = local()
    job = make_job([("master", 1, "sleep 1000"), ("worker", 1, "sleep 1000")], framework="pytorch")
    backend.submit(job)
    backend.stop(job.job_id)  # may land before the supervisors have started their tasks

    obs = backend.observe([job.job_id])[job.job_id]
    assert obs.state == ObservedState.STOPPED
    for name in ("master-0", "worker-0"):
        child = json.loads((backend.state_dir / "tasks" / job.job_id / name / "exit.json").read_text())
        assert child["exit_code"] == 143
        started = backend.state_dir / "tasks" / job.job_id / name / "child.json"
        if started.exists():
            assert gone(json.loads(started.read_text())["pid"])


def test_a_job_that_cannot_start_fails_saying_why_and_frees_its_room(local):
    # Unsandboxed, the backend makes the working directory itself: a file in the way stops the start.
    backend = local(isolation=False, allow_unisolated=True)
    workspace = storage.personal_workspace(root(), "alice")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "a-file").write_text("")
    job = make_job([("main", 1, "true")])
    job.tasks[0].working_dir = str(workspace / "a-file" / "not-a-dir")
    backend.submit(job)

    obs = backend.observe([job.job_id])[job.job_id]

    assert (obs.state, obs.reason) == (ObservedState.FAILED, "start_failed")
    assert "could not start the job" in obs.message and "a-file/not-a-dir" in obs.message
    assert backend.capacity().free_cpu_milli == 2000


@needs_sandbox
def test_a_sandboxed_task_whose_working_dir_cannot_be_made_fails_saying_why(local):
    # Sandboxed, the task's own user makes it inside the sandbox, so the task fails (and says why).
    backend = local()
    workspace = storage.personal_workspace(root(), "alice")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "a-file").write_text("")
    job = make_job([("main", 1, "true")])
    job.tasks[0].working_dir = str(workspace / "a-file" / "not-a-dir")
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert (obs.state, obs.tasks[0].exit_code) == (ObservedState.FAILED, 126)
    assert "cannot enter the working directory" in obs.message and "a-file/not-a-dir" in obs.message
    assert backend.capacity().free_cpu_milli == 2000


def test_a_task_whose_supervisor_vanished_fails_as_lost_and_leaves_nothing(local):
    backend = local()
    job = make_job([("main", 1, "sleep 1000")])
    backend.submit(job)
    pid = running_pid(backend, job.job_id)
    supervisor = json.loads((backend.state_dir / "tasks" / job.job_id / "main-0" / "supervisor.json").read_text())

    os.kill(supervisor["pid"], 9)  # as a host restart or an OOM kill would
    obs = wait_for(backend, job.job_id)

    assert (obs.state, obs.reason) == (ObservedState.FAILED, "lost")
    assert obs.message.startswith("task main-0 ended without an exit code")
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(pid)


def test_two_backend_objects_placing_at_once_never_double_book(local):
    import threading

    backends = [local(cpu=1), local(cpu=1)]
    jobs = [make_job([("main", 1, GATED)]) for _ in backends]
    barrier = threading.Barrier(len(backends))

    def submit(backend: LocalBackend, job: JobDescription) -> None:
        barrier.wait()
        backend.submit(job)

    threads = [threading.Thread(target=submit, args=pair) for pair in zip(backends, jobs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    states = sorted(o.state for o in backends[0].observe([j.job_id for j in jobs]).values())
    assert states == [ObservedState.PENDING, ObservedState.RUNNING]
    for job in jobs:
        release(job)
    for job in jobs:
        assert wait_for(backends[1], job.job_id).state == ObservedState.SUCCEEDED


# --- state outlives the backend object ----------------------------------------------------------------------


def test_a_new_backend_object_mid_run_still_sees_the_job_and_its_end(local):
    first = local()
    job = make_job([("master", 1, GATED), ("worker", 1, GATED)], framework="pytorch")
    first.submit(job)
    assert wait_for(first, job.job_id, states=(ObservedState.RUNNING,)).state == ObservedState.RUNNING
    del first  # a worker restart: nothing in memory survives

    second = local()
    obs = second.observe([job.job_id])[job.job_id]
    assert obs.state == ObservedState.RUNNING
    assert all(t.state == ObservedState.RUNNING for t in obs.tasks)
    release(job)
    assert wait_for(second, job.job_id).state == ObservedState.SUCCEEDED
    assert second.observe(["j-never"])["j-never"].state == ObservedState.MISSING


def test_submit_is_idempotent_and_delete_forgets_the_job_but_keeps_its_outputs(local):
    backend = local()
    job = make_job([("main", 1, 'echo once >> "$model_dir/runs"')])
    backend.submit(job)
    backend.submit(job)
    wait_for(backend, job.job_id)
    backend.submit(job)
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "runs").read_text() == "once\n"

    backend.delete(job.job_id)

    assert backend.observe([job.job_id])[job.job_id].state == ObservedState.MISSING
    assert not (backend.state_dir / "tasks" / job.job_id).exists()
    assert log_of(job, "main-0") == ""
    assert backend.read_log(job.job_id, "main-0") == (b"", 0)
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "runs").exists()
    backend.delete(job.job_id)  # a job already gone is not an error


def test_delete_of_a_running_job_leaves_no_process(local):
    backend = local()
    job = make_job([("main", 1, "sleep 1000")])
    backend.submit(job)
    pid = running_pid(backend, job.job_id)

    backend.delete(job.job_id)

    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(pid)
    assert backend.capacity().free_cpu_milli == 2000


# --- environment contract -------------------------------------------------------------------------------------

DUMP_ENV = (
    "import json, os, pathlib;"
    "pathlib.Path(os.environ['share_dir'], os.environ['EASYAI_TASK_NAME'] + '.json')"
    ".write_text(json.dumps(dict(os.environ)))"
)


def envs_of(job: JobDescription) -> dict[str, dict[str, str]]:
    share = storage.output_dir(root(), job.job_id, "share_dir")
    return {p.stem: json.loads(p.read_text()) for p in share.glob("*.json")}


def test_pytorch_env_contract(local, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/should/not/leak")
    monkeypatch.setenv("SECRET_TOKEN", "nope")
    backend = local(cpu=3)
    job = make_job([("master", 1, [PY, "-c", DUMP_ENV]), ("worker", 2, [PY, "-c", DUMP_ENV])], framework="pytorch")
    backend.submit(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED

    envs = envs_of(job)
    assert {name: envs[name]["RANK"] for name in envs} == {"master-0": "0", "worker-0": "1", "worker-1": "2"}
    assert {e["WORLD_SIZE"] for e in envs.values()} == {"3"}
    assert {e["MASTER_ADDR"] for e in envs.values()} == {"127.0.0.1"}
    ports = {e["MASTER_PORT"] for e in envs.values()}
    assert len(ports) == 1 and 0 < int(ports.pop()) < 65536
    assert {e["LOCAL_RANK"] for e in envs.values()} == {"0"}
    worker = envs["worker-1"]
    assert (worker["EASYAI_JOB_ID"], worker["EASYAI_TASK_NAME"]) == (job.job_id, "worker-1")
    assert (worker["EASYAI_ROLE"], worker["EASYAI_ROLE_INDEX"], worker["EASYAI_ROLE_REPLICAS"]) == ("worker", "1", "2")
    assert worker["model_dir"] == str(storage.output_dir(root(), job.job_id, "model_dir"))
    assert worker["summary_dir"] == str(storage.output_dir(root(), job.job_id, "summary_dir", "worker-1"))
    assert worker["CUDA_VISIBLE_DEVICES"] == ""
    assert worker["GREETING"] == "hello"
    assert "PYTHONPATH" not in worker and "SECRET_TOKEN" not in worker


def test_tensorflow_tf_config(local):
    backend = local(cpu=5)
    roles = [("chief", 1, [PY, "-c", DUMP_ENV]), ("worker", 2, [PY, "-c", DUMP_ENV]), ("ps", 1, [PY, "-c", DUMP_ENV])]
    job = make_job([*roles, ("evaluator", 1, [PY, "-c", DUMP_ENV])], framework="tensorflow")
    backend.submit(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED

    configs = {name: json.loads(env["TF_CONFIG"]) for name, env in envs_of(job).items()}
    clusters = {json.dumps(c["cluster"], sort_keys=True) for c in configs.values()}
    assert len(clusters) == 1
    spec = configs["chief-0"]["cluster"]
    assert sorted(spec) == ["chief", "ps", "worker"]  # the evaluator is not part of the training cluster
    assert [len(spec[r]) for r in ("chief", "worker", "ps")] == [1, 2, 1]
    endpoints = [e for addresses in spec.values() for e in addresses]
    assert all(e.startswith("127.0.0.1:") for e in endpoints) and len(set(endpoints)) == 4
    assert configs["worker-1"]["task"] == {"type": "worker", "index": 1}
    assert configs["evaluator-0"]["task"] == {"type": "evaluator", "index": 0}


def test_gpus_are_given_out_exclusively(local):
    backend = local(cpu=4, gpus=[0, 1])
    gated = f'{PY} -c "{DUMP_ENV}"; {GATED}'
    trainer = make_job([("worker", 2, gated)], gpu=1)
    cpu_only = make_job([("main", 1, gated)], gpu=0)
    backend.submit(trainer)
    backend.submit(cpu_only)
    one_more = make_job([("main", 1, "true")], gpu=1)
    backend.submit(one_more)

    wait_for(backend, trainer.job_id, states=(ObservedState.RUNNING,))
    obs = backend.observe([trainer.job_id, one_more.job_id])
    assert sorted(t.gpu_ids[0] for t in obs[trainer.job_id].tasks) == ["0", "1"]
    assert (obs[one_more.job_id].state, obs[one_more.job_id].message) == (ObservedState.PENDING, "needs 1 GPU, 0 free")
    capacity = backend.capacity()
    assert (capacity.gpu, capacity.free_gpu) == (2, 0)
    release(trainer)
    release(cpu_only)
    wait_for(backend, trainer.job_id)
    wait_for(backend, cpu_only.job_id)

    seen = {name: env["CUDA_VISIBLE_DEVICES"] for name, env in envs_of(trainer).items()}
    assert sorted(seen.values()) == ["0", "1"]
    assert envs_of(trainer)["worker-0"]["NVIDIA_VISIBLE_DEVICES"] == seen["worker-0"]
    assert envs_of(cpu_only)["main-0"]["CUDA_VISIBLE_DEVICES"] == ""
    assert wait_for(backend, one_more.job_id).state == ObservedState.SUCCEEDED


def test_xgboost_and_paddle_env_follow_the_training_operator():
    from clusters.backends.local.contract import framework_env

    xgb = make_job([("master", 1, "true"), ("worker", 2, "true")], framework="xgboost")
    ports = {"master-0": 4000, "worker-0": 4001, "worker-1": 4002}
    worker = framework_env(xgb, xgb.tasks[2], ports)
    assert worker == {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "4000",
        "WORLD_SIZE": "3",
        "RANK": "2",
        "WORKER_PORT": "4001",
        "WORKER_ADDRS": "127.0.0.1,127.0.0.1",
    }
    assert framework_env(xgb, xgb.tasks[0], ports)["RANK"] == "0"

    paddle = make_job([("worker", 2, "true")], framework="paddle")
    ports = {"worker-0": 5000, "worker-1": 5001}
    second = framework_env(paddle, paddle.tasks[1], ports)
    assert second["PADDLE_MASTER"] == "127.0.0.1:5000"
    assert (second["PADDLE_TRAINER_ID"], second["PADDLE_TRAINERS_NUM"], second["PADDLE_NNODES"]) == ("1", "2", "2")
    assert second["PADDLE_TRAINER_ENDPOINTS"] == "127.0.0.1:5000,127.0.0.1:5001"
    assert second["PADDLE_CURRENT_ENDPOINT"] == "127.0.0.1:5001"


def test_gpus_reported_by_nvidia_smi_are_read():
    from clusters.backends.local.resources import parse_nvidia_smi

    gpus = parse_nvidia_smi("0, GPU-1a2b, 81559\n1, GPU-3c4d, 81559\n")
    assert [(g.id, g.uuid, g.memory_bytes) for g in gpus] == [
        ("0", "GPU-1a2b", 81559 * 2**20),
        ("1", "GPU-3c4d", 81559 * 2**20),
    ]


# --- logs and shells -----------------------------------------------------------------------------------------------


def test_read_log_and_follow_log(local):
    backend = local()
    job = make_job([("main", 1, 'for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.05; done')])
    backend.submit(job)

    chunks = list(backend.follow_log(job.job_id, "main-0"))

    expected = b"".join(f"tick {i}\n".encode() for i in range(1, 6))
    assert b"".join(chunks) == expected
    assert backend.read_log(job.job_id, "main-0", 5, 2) == (b"1\n", 7)
    assert backend.read_log(job.job_id, "main-0", 7) == (expected[7:], len(expected))
    assert list(backend.follow_log(job.job_id, "main-0", len(expected))) == []
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED


def test_shell_in_a_running_task_has_its_env_and_working_dir(local, monkeypatch, tmp_path):
    # Tasks inherit HOME; the shell then reads its ~/.bashrc, and this host's may be slow (pyenv init).
    monkeypatch.setenv("HOME", str(tmp_path))
    backend = local()
    job = make_job([("master", 1, GATED), ("worker", 1, GATED)], framework="pytorch")
    backend.submit(job)
    wait_for(backend, job.job_id, states=(ObservedState.RUNNING,))

    shell = backend.open_shell(job.job_id, "worker-0")
    try:
        shell.resize(40, 120)
        shell.write(b"echo rank=$RANK; pwd\n")
        output = b""
        deadline = time.monotonic() + 10
        workspace = str(storage.personal_workspace(root(), "alice")).encode()
        while time.monotonic() < deadline and not (b"rank=1" in output and workspace + b"\r\n" in output):
            output += shell.read(0.1) or b""
        assert b"rank=1" in output, output
        assert workspace + b"\r\n" in output, output
        shell.write(b"stty size\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b"40 120" not in output:
            output += shell.read(0.1) or b""
        assert b"40 120" in output
    finally:
        shell.close()
    assert gone(shell.pid)
    assert shell.read() is None

    release(job)
    wait_for(backend, job.job_id)
    with pytest.raises(BackendError, match="not running"):
        backend.open_shell(job.job_id, "worker-0")
    with pytest.raises(BackendError, match="no task"):
        backend.open_shell(job.job_id, "worker-9")


def test_stopping_a_job_ends_its_open_shells(local):
    backend = local(stop_grace=0.5)
    job = make_job([("main", 1, "sleep 1000")])
    backend.submit(job)
    wait_for(backend, job.job_id, states=(ObservedState.RUNNING,))
    shell = backend.open_shell(job.job_id, "main-0", command=["sleep", "1000"])

    backend.stop(job.job_id)

    assert gone(shell.pid)
    shell.close()


# --- check and render -------------------------------------------------------------------------------------------------


def test_check_refuses_a_job_bigger_than_the_host_and_submit_with_it(local):
    backend = local()
    job = make_job([("worker", 2, "true")], cpu_milli=32000, gpu=1)

    problems = backend.check(job)

    assert problems == ["needs 64 CPU but this host has 2 in all", "needs 2 GPU but this host has 0 in all"]
    with pytest.raises(BackendRejected, match="needs 64 CPU"):
        backend.submit(job)
    assert backend.observe([job.job_id])[job.job_id].state == ObservedState.MISSING


def test_mpi_without_mpirun_is_refused(local, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    backend = local(cpu=3)
    job = make_job([("launcher", 1, "true"), ("worker", 2, "true")], framework="mpi")

    assert backend.check(job) == ["MPI jobs need mpirun on this host; install Open MPI (apt-get install openmpi-bin)"]


@pytest.mark.skipif(not shutil.which("mpirun"), reason="Open MPI is not installed")
def test_mpi_runs_the_launcher_under_mpirun_over_the_workers(local):
    backend = local(cpu=3)
    job = make_job(
        [("launcher", 1, 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"'), ("worker", 2, "")],
        framework="mpi",
    )
    assert backend.check(job) == []
    plans = backend.render(job)
    assert plans[0]["command"][:5] == [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe", "-np", "2"]
    assert plans[0]["argv"][-len(plans[0]["command"]) :] == plans[0]["command"]  # under the wrapper, if any
    assert plans[1]["argv"] is None

    backend.submit(job)
    obs = wait_for(backend, job.job_id, timeout=30)

    assert obs.state == ObservedState.SUCCEEDED, obs.message
    assert [t.state for t in obs.tasks] == [ObservedState.SUCCEEDED] * 3
    assert sorted(log_of(job, "launcher-0").split("\n")[:2]) == ["rank 0 of 2", "rank 1 of 2"]


def test_render_describes_each_process_without_starting_anything(local):
    backend = local()
    job = make_job(
        [("master", 1, [PY, "-c", "pass"]), ("worker", 1, [PY, "-c", "pass"])], framework="pytorch", oversell=2.0
    )

    plans = backend.render(job)

    assert [p["task"] for p in plans] == ["master-0", "worker-0"]
    assert plans[1]["command"] == [PY, "-c", "pass"]
    if tools.can_wrap():  # the task wrapper runs the command (static tools, services, holds)
        tools_dir = str(backend.tools_dir)
        assert plans[1]["argv"] == [f"{tools_dir}/busybox", "sh", f"{tools_dir}/easyai-task", PY, "-c", "pass"]
        assert plans[1]["toolbox"]["tools"] == tools_dir
        assert {"EASYAI_TOOLS", "EASYAI_RUN_DIR", "EASYAI_SERVICE_LOGS", "EASYAI_SERVICES"} <= set(plans[1]["env"])
    else:
        assert plans[1]["argv"] == [PY, "-c", "pass"]
    assert plans[1]["working_dir"] == str(storage.personal_workspace(root(), "alice"))
    assert {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "model_dir", "EASYAI_JOB_ID"} <= set(plans[1]["env"])
    assert plans[1]["accounted"] == {"cpu_milli": 500, "memory_bytes": 128 * 2**20, "gpu": 0}
    assert backend.observe([job.job_id])[job.job_id].state == ObservedState.MISSING


def test_a_bad_capacity_setting_names_the_key(local):
    from clusters.backends.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="settings.memory"):
        local(memory="lots").capacity()


# --- a read-only data_dir ------------------------------------------------------------------------------------------------

# Reads the owner's data, tries to write next to it, and writes its model where it may.
TRY_DATA_DIR = (
    'cat "$data_dir/train.csv"; '
    'if touch "$data_dir/written" 2>/dev/null; then echo data_dir writable; else echo data_dir read-only; fi; '
    'echo weights > "$model_dir/model.bin"'
)


def data_dir_of(owner: str = "alice") -> Path:
    data = Path(storage.local_env(root(), "any", "main-0", owner)["data_dir"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.csv").write_text("x,y\n")
    return data


def test_data_dir_is_read_only_for_the_task_and_its_shell_when_the_cluster_says_so(local, monkeypatch, tmp_path):
    refused = isolation.readonly_refused()
    if refused:
        pytest.skip(f"this host refuses a read-only data_dir: {refused}")
    monkeypatch.setenv("HOME", str(tmp_path))
    backend = local(readonly_data_dir=True)
    data = data_dir_of()
    job = make_job([("main", 1, TRY_DATA_DIR + "; " + GATED)])
    backend.submit(job)
    wait_for(backend, job.job_id, states=(ObservedState.RUNNING,))

    shell = backend.open_shell(job.job_id, "main-0", ["/bin/sh", "-c", 'touch "$data_dir/from-shell"; echo rc=$?'])
    try:
        output = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"rc=" not in output:
            output += shell.read(0.1) or b""
    finally:
        shell.close()
    assert b"rc=1" in output, output
    release(job)

    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    assert log_of(job, "main-0") == "x,y\ndata_dir read-only\n"
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "model.bin").read_text() == "weights\n"
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"]
    # The read-only mount was the task's own: on the host the owner's data stays writable.
    (data / "uploaded.csv").write_text("x,y\n")


def test_data_dir_stays_writable_by_default_where_tasks_are_not_isolated(local):
    data = data_dir_of()
    backend = local(isolation=False, allow_unisolated=True)
    job = make_job([("main", 1, TRY_DATA_DIR)])
    backend.submit(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    assert log_of(job, "main-0") == "x,y\ndata_dir writable\n"
    assert (data / "written").exists()


def test_a_bad_readonly_data_dir_setting_names_the_key(local):
    from clusters.backends.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="settings.readonly_data_dir: true or false"):
        local(readonly_data_dir="yes").capacity()


# --- the PyTorch DDP example ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pytorch_ddp_example_trains_through_the_local_backend(local):
    if os.environ.get("EASYAI_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401  - must be there: a missing torch fails here instead of skipping
    else:
        pytest.importorskip("torch")
    backend = local(cpu=2, memory="8Gi")
    # As the README says: the script goes into the personal workspace (a task does not see the portal's code).
    example = storage.personal_workspace(root(), "alice") / "examples" / "pytorch-ddp"
    shutil.copytree(REPO / "examples" / "pytorch-ddp", example)
    command = [PY, str(example / "train.py"), "--epochs", "30"]
    job = make_job([("master", 1, command), ("worker", 1, command)], framework="pytorch")
    backend.submit(job)

    obs = wait_for(backend, job.job_id, timeout=120)

    assert obs.state == ObservedState.SUCCEEDED, obs.message
    master_log = log_of(job, "master-0")
    assert "world size 2" in master_log and "final loss" in master_log
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "model.pt").exists()
    summaries = storage.output_dir(root(), job.job_id, "summary_dir", "master-0")
    assert any(summaries.iterdir())


# --- end to end: the platform's submit service and sync pass over a local cluster --------------------------------------


@pytest.mark.django_db
def test_a_job_submitted_through_the_platform_runs_on_the_local_cluster(owner, django_capture_on_commit_callbacks):
    from jobs import services, workers
    from jobs.models import Job
    from jobs.state import JobState

    local_cluster = Cluster.objects.create(
        name="local-e2e", kind="local", is_default=True, settings={"cpu": 2, "memory": "4Gi", "stop_grace": 1}
    )
    spec = {
        "name": "e2e",
        "framework": "pytorch",
        # "python" is the portal's Python on the local backend: there are no images.
        "command": "python -c \"import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\"",
        "roles": {
            "master": {"replicas": 1, "cpu": "500m", "memory": "256Mi"},
            "worker": {"replicas": 1, "cpu": "500m", "memory": "256Mi"},
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_submit(user=owner, data=spec)
    job.refresh_from_db()
    assert job.state == JobState.PENDING

    deadline = time.monotonic() + 20
    while job.state not in (JobState.SUCCESS, JobState.FAILED, JobState.STOPPED):
        assert time.monotonic() < deadline, (job.state, job.message)
        workers.cluster_sync(local_cluster)
        job = Job.objects.get(pk=job.pk)
        time.sleep(0.05)

    assert job.state == JobState.SUCCESS, job.message
    assert sorted((t.role, t.state, t.exit_code) for t in job.tasks.all()) == [
        ("master", "succeeded", 0),
        ("worker", "succeeded", 0),
    ]
    assert storage.task_log_path(root(), job.public_id, "worker-0").read_text() == "rank 1 of 2\n"
