"""What the local backend costs over starting a process by hand.

    .venv/bin/python bench/local_overhead.py [--runs 20] [--jobs 200] [--ddp-epochs 20] [--no-ddp]

1. latency: a trivial job (``true``) through LocalBackend, submit -> observe until
   SUCCEEDED, median of --runs, against ``subprocess.run(["true"])``;
2. throughput: --jobs trivial jobs submitted at once, observed until all ended: jobs per minute;
3. the PyTorch DDP example (master + worker) through LocalBackend against bare
   ``torchrun --nproc_per_node=2`` on the same script (skipped, with a note, without torch).

It drives the backend directly (no database, no workers), in a temporary EASYAI_VAR_DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR_DIR = tempfile.mkdtemp(prefix="easyai-bench-")
os.environ["EASYAI_VAR_DIR"] = VAR_DIR
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
os.environ.pop("DATABASE_URL", None)  # the backend needs no database

import django  # noqa: E402

from easyai_site.prepare import prepare  # noqa: E402

prepare()  # var/ and its secret key, as the portal's entry points make them (the portal it starts shares them)
django.setup()

from django.conf import settings  # noqa: E402

from clusters.backends.base import JobDescription, ObservedState, TaskDescription  # noqa: E402
from clusters.backends.contract import storage  # noqa: E402
from clusters.backends.local import LocalBackend  # noqa: E402
from clusters.models import Cluster  # noqa: E402

FINAL = (ObservedState.SUCCEEDED, ObservedState.FAILED, ObservedState.STOPPED)
POLL_S = 0.02  # a tighter loop only steals the CPU the tasks need (2-core hosts)


def job(command: list[str], *, framework: str = "batch", roles: tuple[str, ...] = ("main",), cpu_milli: int = 100):
    job_id = f"j-{uuid.uuid4().hex[:8]}"
    root = Path(settings.EASYAI_STORAGE_ROOT)
    tasks = []
    for role in roles:
        name = f"{role}-0"
        paths = storage.local_env(root, job_id, name, "bench")
        tasks.append(
            TaskDescription(
                role=role,
                index=0,
                replicas=1,
                name=name,
                image="",
                command=command,
                working_dir=str(storage.personal_workspace(root, "bench")),
                env=dict(paths),
                cpu_milli=cpu_milli,
                memory_bytes=64 * 2**20,
                gpu=0,
                storage=dict(paths),
                log_path=str(storage.task_log_path(root, job_id, name)),
                places=storage.places(job_id, name, "bench"),
            )
        )
    return JobDescription(
        job_id=job_id,
        name="bench",
        team="bench",
        owner="bench",
        framework=framework,
        priority="normal",
        tasks=tasks,
        created_at=datetime.now(UTC),
    )


def run_until_final(backend: LocalBackend, description: JobDescription, timeout: float = 600) -> str:
    backend.submit(description)
    deadline = time.monotonic() + timeout
    while True:
        state = backend.observe([description.job_id])[description.job_id].state
        if state in FINAL:
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"{description.job_id} still {state} after {timeout}s")
        time.sleep(POLL_S)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency(backend: LocalBackend, runs: int) -> None:
    true = shutil.which("true") or "/bin/true"
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([true], check=True)
        bare.append(time.perf_counter() - started)
    through = []
    for _ in range(runs):
        description = job([true])
        started = time.perf_counter()
        state = run_until_final(backend, description)
        through.append(time.perf_counter() - started)
        assert state == ObservedState.SUCCEEDED, state
        backend.delete(description.job_id)
    b, t = statistics.median(bare), statistics.median(through)
    print(f"trivial job, median of {runs}:")
    print(f"  subprocess.run(['true'])            {ms(b)}")
    print(
        f"  LocalBackend submit -> SUCCEEDED    {ms(t)}   ({(t - b) * 1000:+.1f} ms, observe polled every {ms(POLL_S)})"
    )


def throughput(backend: LocalBackend, count: int) -> None:
    true = shutil.which("true") or "/bin/true"
    descriptions = [job([true]) for _ in range(count)]
    started = time.perf_counter()
    for description in descriptions:
        backend.submit(description)
    submitted = time.perf_counter() - started
    pending = {d.job_id for d in descriptions}
    failed = 0
    passes = 0
    while pending:
        observed = backend.observe(sorted(pending))
        passes += 1
        for job_id, obs in observed.items():
            if obs.state in FINAL:
                pending.discard(job_id)
                failed += obs.state != ObservedState.SUCCEEDED
        if pending:
            time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    capacity = backend.capacity()
    print(
        f"{count} trivial jobs (100m CPU each on {capacity.cpu_milli // 1000} CPU, so up to "
        f"{capacity.cpu_milli // 100} at once):"
    )
    print(f"  submitted in {submitted:.2f} s, all ended in {elapsed:.2f} s over {passes} observe passes")
    print(f"  {count / elapsed * 60:.0f} jobs per minute ({failed} not succeeded)")
    for description in descriptions:
        backend.delete(description.job_id)


def ddp(backend: LocalBackend, epochs: int) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("DDP example: skipped, torch is not installed (.venv/bin/pip install torch==2.13.0)")
        return
    script = REPO / "examples" / "pytorch-ddp" / "train.py"
    # The task runs the script from the workspace: a sandboxed task does not see the portal's code.
    workspace = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), "bench") / "pytorch-ddp"
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(script, workspace / "train.py")
    description = job(
        [sys.executable, str(workspace / "train.py"), "--epochs", str(epochs)], framework="pytorch", roles=("master", "worker"),
        cpu_milli=1000,
    )  # fmt: skip
    started = time.perf_counter()
    state = run_until_final(backend, description)
    through = time.perf_counter() - started
    log = storage.task_log_path(Path(settings.EASYAI_STORAGE_ROOT), description.job_id, "master-0").read_text()
    backend.delete(description.job_id)

    torchrun = Path(sys.executable).with_name("torchrun")
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        bare = subprocess.run(
            [str(torchrun), "--nproc_per_node=2", str(script), "--epochs", str(epochs)],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        bare_s = time.perf_counter() - started
    final = [line for line in log.splitlines() if "final loss" in line]
    print(f"PyTorch DDP example, master + worker, {epochs} epochs:")
    print(f"  torchrun --nproc_per_node=2          {bare_s:.2f} s  (exit {bare.returncode})")
    print(f"  LocalBackend submit -> {state:<10}   {through:.2f} s  ({through - bare_s:+.2f} s)")
    if final:
        print(f"  {final[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--ddp-epochs", type=int, default=20)
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    backend = LocalBackend(Cluster(name="bench", kind="local", settings={"memory": "64Gi"}))
    print(f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, state in {VAR_DIR}")
    try:
        latency(backend, args.runs)
        throughput(backend, args.jobs)
        if not args.no_ddp:
            ddp(backend, args.ddp_epochs)
    finally:
        shutil.rmtree(VAR_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
