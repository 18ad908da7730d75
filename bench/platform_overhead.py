"""Platform overhead on the local backend, measured through the whole platform, side by side in one run.

The portal runs as `make run` runs it (`manage.py serve`: daphne, the django-q2 worker and the
scheduler) on a fresh SQLite database in a temporary directory; jobs go through the API and are
followed through the API, exactly as a user's would.

1. a trivial job (`true`) from submit to success, median of --runs, against subprocess.run(["true"]);
2. --jobs trivial jobs submitted at once: jobs per minute;
3. the PyTorch DDP example (master + worker) through the platform against bare
   `torchrun --nproc_per_node=2` on the same script (needs torch; skipped with a note otherwise).

    .venv/bin/python bench/platform_overhead.py [--runs 20] [--jobs 200] [--ddp-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TRIVIAL = {"name": "true", "framework": "batch", "command": ["true"], "roles": {"main": {"cpu": "100m", "memory": "64Mi"}}}
FINAL = {"success", "failed", "stopped"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Portal:
    def __init__(self, var_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
            "EASYAI_VAR_DIR": str(var_dir),
            "EASYAI_ADMIN_PASSWORD": "bench-password-1",
            "EASYAI_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "easyai_site.settings",
        }
        manage = [PYTHON, str(REPO / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=self.env, check=True, cwd=REPO)
        subprocess.run([*manage, "bootstrap"], env=self.env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        self.process = subprocess.Popen(
            [*manage, "serve", "--port", str(self.port)],
            env=self.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/accounts/login/", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise SystemExit("the portal did not come up") from None
                time.sleep(0.2)
        self.token = self.call("POST", "/api/v1/auth/token/", {"username": "admin", "password": "bench-password-1"})[
            "token"
        ]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Token {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def submit(self, spec: dict) -> str:
        return self.call("POST", "/api/v1/jobs/", spec)["id"]

    def wait(self, job_id: str, poll: float = 0.05, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.call("GET", f"/api/v1/jobs/{job_id}/")
            if job["state"] in FINAL:
                return job
            time.sleep(poll)
        raise SystemExit(f"{job_id} did not finish in {timeout} s")

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def latency(portal: Portal, runs: int) -> None:
    bare = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(["true"], check=True)
        bare.append(time.perf_counter() - start)
    through = []
    for i in range(runs):
        start = time.perf_counter()
        job = portal.wait(portal.submit({**TRIVIAL, "name": f"true-{i}"}))
        through.append(time.perf_counter() - start)
        assert job["state"] == "success", job
    bare_ms, through_ms = statistics.median(bare) * 1000, statistics.median(through) * 1000
    print(f"1. a trivial job, submit -> success, median of {runs}:")
    print(f"   subprocess.run(['true'])          {bare_ms:8.1f} ms")
    print(f"   through the platform (API)        {through_ms:8.1f} ms  (p90 {sorted(through)[int(runs * 0.9) - 1] * 1000:.0f} ms)")
    print(f"   platform overhead per job         {through_ms - bare_ms:8.1f} ms")


def throughput(portal: Portal, count: int) -> None:
    start = time.perf_counter()
    ids = [portal.submit({**TRIVIAL, "name": f"many-{i}"}) for i in range(count)]
    submitted = time.perf_counter() - start
    states = {}
    for job_id in ids:
        states[job_id] = portal.wait(job_id, poll=0.2)["state"]
    elapsed = time.perf_counter() - start
    failed = sum(1 for s in states.values() if s != "success")
    print(f"2. {count} trivial jobs submitted at once ({submitted:.1f} s to submit them all):")
    print(f"   all ended in {elapsed:.1f} s: {count / elapsed * 60:.0f} jobs per minute, {failed} not successful")


def ddp(portal: Portal, epochs: int, var_dir: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("3. DDP example: skipped, torch is not installed (pip install torch==2.13.0)")
        return
    script = REPO / "examples" / "pytorch-ddp" / "train.py"
    workspace = var_dir / "storage" / "notebook" / "admin" / "examples" / "pytorch-ddp"
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(script, workspace / "train.py")
    torchrun = Path(PYTHON).with_name("torchrun")
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "summary_dir": f"{scratch}/summary", "model_dir": f"{scratch}/model"}
        start = time.perf_counter()
        subprocess.run(
            [str(torchrun), "--nproc_per_node=2", str(script), "--epochs", str(epochs)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        bare = time.perf_counter() - start
    spec = {
        "name": "ddp",
        "framework": "pytorch",
        "command": f"python examples/pytorch-ddp/train.py --epochs {epochs}",
        "roles": {"master": {"cpu": "1", "memory": "1Gi"}, "worker": {"cpu": "1", "memory": "1Gi"}},
    }
    start = time.perf_counter()
    job = portal.wait(portal.submit(spec), poll=0.1)
    through = time.perf_counter() - start
    assert job["state"] == "success", job
    print(f"3. the DDP example ({epochs} epochs, master + worker):")
    print(f"   bare torchrun --nproc_per_node=2  {bare:8.2f} s")
    print(f"   through the platform (API)        {through:8.2f} s  ({(through / bare - 1) * 100:+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--ddp-epochs", type=int, default=20)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="easyai-platform-bench-"))
    portal = Portal(var_dir)
    try:
        print(f"portal: {portal.url} (manage.py serve, SQLite, ORM broker, local backend), {os.cpu_count()} CPUs")
        latency(portal, args.runs)
        throughput(portal, args.jobs)
        ddp(portal, args.ddp_epochs, var_dir)
    finally:
        portal.close()
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
