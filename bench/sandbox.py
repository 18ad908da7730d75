"""What task isolation costs on the local backend: the same jobs with and without the sandbox, side by side.

    .venv/bin/python bench/sandbox.py [--runs 20] [--ddp-epochs 20] [--ddp-runs 2] [--no-ddp]

1. a trivial job (``true``) through LocalBackend, submit -> observe until SUCCEEDED, median of --runs, on a
   cluster with isolation (the default: bubblewrap, its own PID namespace, the sandbox's user) and on one
   with ``isolation: false``, run alternately so that both see the same host;
2. the sandbox alone: ``true`` under the very bwrap + setpriv + wrapper command a task gets, against
   ``subprocess.run(["true"])``;
3. the PyTorch DDP example (master + worker) through LocalBackend, its wall time (submit -> SUCCEEDED) with and
   without isolation, --ddp-runs each, alternately (skipped, with a note, without torch).

Built on bench/local_overhead.py's helpers (the backend driven directly: no database, no workers), in a
temporary EASYAI_VAR_DIR. Needs a host that can sandbox (root, bubblewrap installed); says why not otherwise.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# local_overhead sets up Django on a throw-away EASYAI_VAR_DIR, before anything imports a model.
import local_overhead
from django.conf import settings
from local_overhead import REPO, VAR_DIR, job, ms, run_until_final

from clusters.backends.base import ObservedState
from clusters.backends.contract import storage
from clusters.backends.local import LocalBackend, sandbox
from clusters.models import Cluster

SETTINGS = {"memory": "64Gi"}


def backends() -> dict[str, LocalBackend]:
    return {
        "unisolated": LocalBackend(Cluster(name="bench-open", kind="local", settings={
            **SETTINGS, "isolation": False, "allow_unisolated": True})),
        "sandboxed": LocalBackend(Cluster(name="bench-boxed", kind="local", settings=SETTINGS)),
    }  # fmt: skip


def row(label: str, open_s: float, boxed_s: float, unit: str = "ms") -> str:
    if unit == "ms":
        a, b, cost = ms(open_s), ms(boxed_s), f"{(boxed_s - open_s) * 1000:+.1f} ms"
    else:
        a, b, cost = f"{open_s:.2f} s", f"{boxed_s:.2f} s", f"{boxed_s - open_s:+.2f} s"
    share = f"({(boxed_s / open_s - 1) * 100:+.0f} %)" if open_s else ""
    return f"  {label:<36} {a:>12} {b:>12}   {cost} {share}"


def header() -> str:
    return f"  {'':<36} {'unisolated':>12} {'sandboxed':>12}   cost of the sandbox"


def trivial(pair: dict[str, LocalBackend], runs: int) -> tuple[float, float]:
    true = shutil.which("true") or "/bin/true"
    samples: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(runs):
        for name, backend in pair.items():
            description = job([true])
            started = time.perf_counter()
            state = run_until_final(backend, description)
            samples[name].append(time.perf_counter() - started)
            assert state == ObservedState.SUCCEEDED, (name, state)
            backend.delete(description.job_id)
    return statistics.median(samples["unisolated"]), statistics.median(samples["sandboxed"])


def sandbox_alone(box: sandbox.Sandbox, runs: int) -> tuple[float, float]:
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory() as workdir:
        os.chown(workdir, box.uid, box.gid)
        argv = sandbox.task_argv(box, [true], cwd=workdir, mounts=[sandbox.Mount(workdir, True)])
        bare, boxed = [], []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([true], check=True)
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(argv, check=True)
            boxed.append(time.perf_counter() - started)
    return statistics.median(bare), statistics.median(boxed)


def ddp(pair: dict[str, LocalBackend], epochs: int, runs: int) -> tuple[float, float] | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("  DDP example: skipped, torch is not installed (.venv/bin/pip install torch==2.13.0)")
        return None
    # As the README says: the script in the personal workspace (a sandboxed task does not see the portal's code).
    workspace = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), "bench") / "pytorch-ddp"
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "pytorch-ddp" / "train.py", workspace / "train.py")
    samples: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(runs):
        for name, backend in pair.items():
            description = job(
                [sys.executable, str(workspace / "train.py"), "--epochs", str(epochs)],
                framework="pytorch", roles=("master", "worker"), cpu_milli=1000,
            )  # fmt: skip
            started = time.perf_counter()
            state = run_until_final(backend, description)
            samples[name].append(time.perf_counter() - started)
            if state != ObservedState.SUCCEEDED:
                log = storage.task_log_path(Path(settings.EASYAI_STORAGE_ROOT), description.job_id, "master-0")
                raise SystemExit(f"the DDP example {state} {name}: {log.read_text()[-2000:]}")
            backend.delete(description.job_id)
    return statistics.median(samples["unisolated"]), statistics.median(samples["sandboxed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ddp-epochs", type=int, default=20)
    parser.add_argument("--ddp-runs", type=int, default=2)
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    pair = backends()
    refused = pair["sandboxed"].isolation_problem()
    if refused:
        raise SystemExit(f"this host cannot sandbox tasks: {refused}")
    box = pair["sandboxed"].sandbox()
    assert box is not None
    bwrap = subprocess.run([sandbox.find_bwrap(box.bwrap) or "bwrap", "--version"], capture_output=True, text=True)
    print(
        f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {bwrap.stdout.strip()}, "
        f"sandbox user {box.uid}, state in {VAR_DIR}"
    )
    try:
        print(header())
        print(row(f"trivial job, submit -> success (x{args.runs})", *trivial(pair, args.runs)))
        bare, boxed = sandbox_alone(box, args.runs)
        print(
            f"  {'true, bare and in the sandbox alone':<36} {ms(bare):>12} {ms(boxed):>12}   {(boxed - bare) * 1000:+.1f} ms"
        )
        if not args.no_ddp:
            found = ddp(pair, args.ddp_epochs, args.ddp_runs)
            if found:
                label = f"DDP example, {args.ddp_epochs} epochs (x{args.ddp_runs})"
                print(row(label, *found, unit="s"))
    finally:
        shutil.rmtree(VAR_DIR, ignore_errors=True)


if __name__ == "__main__":
    local_overhead.POLL_S = 0.02
    main()
