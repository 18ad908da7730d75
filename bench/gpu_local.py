"""The local backend on a host with NVIDIA GPUs: placement, what a task sees, and what the sampler reads.

    python bench/gpu_local.py

On a host whose ``nvidia-smi`` lists GPUs (the cluster's settings name none, so the backend asks it), it:

1. submits a one-GPU job whose task reports ``CUDA_VISIBLE_DEVICES`` and, with PyTorch, the device it sees and a
   computation on it; while it runs, a second one-GPU job for each GPU more than the host has waits
   ("needs 1 GPU, 0 free");
2. reads the running task's usage as the monitoring sampler does (``usage()``: NVML's utilisation and memory of the
   task's GPU), while the task keeps the GPU busy;
3. prints the figures: GPUs found, the time from submit to the task's first line, the usage read, and what waited.

It drives the backend directly (no database, no workers), in a temporary EASYAI_VAR_DIR; tasks run in their
sandbox where this host has bubblewrap (the GPU's /dev/nvidia* let through), unisolated otherwise. It exits non-zero when a check fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
os.environ.setdefault("EASYAI_VAR_DIR", tempfile.mkdtemp(prefix="easyai-gpu-"))

TASK = r"""
import json, os, sys, time
seen = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "at": time.time()}
try:
    import torch
    seen["torch_devices"] = torch.cuda.device_count()
    seen["name"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if torch.cuda.is_available():
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        seen["sum_ok"] = bool(torch.isfinite((a @ a).float().sum()).item())
except ImportError:
    seen["torch_devices"] = None
print("SEEN " + json.dumps(seen), flush=True)
if seen.get("name"):
    end = time.time() + float(sys.argv[1])
    while time.time() < end:  # keep the GPU busy while the sampler reads it
        a = a @ a
        a = a / a.abs().max()
        torch.cuda.synchronize()
"""


def main() -> int:
    import django

    from easyai_site.prepare import prepare

    prepare()
    django.setup()
    from clusters.backends.base import ObservedState
    from clusters.backends.local import LocalBackend
    from clusters.backends.local.resources import host_gpus
    from clusters.tests.conftest import cluster, make_job, wait_for

    gpus = host_gpus()
    print(f"GPUs nvidia-smi reports: {len(gpus)} ({', '.join(g.uuid for g in gpus) or 'none'})")
    if not gpus:
        print("no GPU on this host: nothing to check")
        return 1
    settings = {"cpu": os.cpu_count() or 2, "memory": "16Gi"}
    if not shutil.which("bwrap"):
        settings.update(isolation=False, allow_unisolated=True)
    backend = LocalBackend(cluster(**settings))
    trainer = make_job([("main", 1, [sys.executable, "-c", TASK, "20"])], gpu=1)
    extra = [make_job([("main", 1, ["true"])], gpu=1) for _ in range(len(gpus))]
    submitted = time.time()
    backend.submit(trainer)
    for job in extra:
        backend.submit(job)
    wait_for(backend, trainer.job_id, states=(ObservedState.RUNNING,), timeout=60)
    log = Path(backend.records.load(trainer.job_id)["tasks"]["main-0"]["log"])
    deadline = time.time() + 120
    seen = None
    while time.time() < deadline and seen is None:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("SEEN "):
                seen = json.loads(line[5:])
        time.sleep(0.1)
    observed = backend.observe([trainer.job_id, *(j.job_id for j in extra)])
    task = observed[trainer.job_id].tasks[0]
    waiting = [observed[j.job_id] for j in extra if observed[j.job_id].state == ObservedState.PENDING]
    readings = []
    for _ in range(10):
        readings += [u for u in backend.usage([trainer.job_id]) if u.gpu_util is not None]
        time.sleep(0.5)
    backend.stop(trainer.job_id)
    for job in extra:
        backend.stop(job.job_id)
    print(
        f"tasks {'sandboxed' if backend.sandbox() else 'unisolated'}; placed on GPU {task.gpu_ids}; the task saw {seen}"
    )
    print(f"submit to the task's first line: {(seen['at'] - submitted) if seen else float('nan'):.2f} s")
    if readings:
        utils = [u.gpu_util for u in readings]
        mem = max(u.gpu_memory_bytes or 0 for u in readings)
        print(f"usage() over 5 s: GPU util max {max(utils):.0f}%, mean {sum(utils) / len(utils):.0f}%; "
              f"GPU memory up to {mem / 2**30:.2f} GiB ({len(readings)} readings)")  # fmt: skip
    print(f"jobs waiting for a GPU while it ran: {len(waiting)} of {len(extra)}: "
          f"{sorted({w.message for w in waiting})}")  # fmt: skip
    ok = (
        seen is not None
        and seen["CUDA_VISIBLE_DEVICES"] == task.gpu_ids[0]
        and (seen.get("torch_devices") in (None, 1))
        and len(waiting) == 1
        and (not seen.get("name") or (readings and max(u.gpu_util for u in readings) > 0))
    )
    print("checks:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
