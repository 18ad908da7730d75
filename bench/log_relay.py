"""Log relay: from a task's write to the websocket client's receipt, through daphne and the log consumer.

    .venv/bin/python bench/log_relay.py [--lines 100000] [--rate 20000] [--layers memory,redis]
                                        [--clients browser,python]

A real job on the local backend writes numbered lines, each stamped with the time it was written (one
write per line, so the stamp is the moment the line reached the log file). A websocket client connected
to daphne (the production server, in a subprocess) receives them from ``/ws/jobs/<id>/tasks/main-0/log/``
and stamps each line on receipt. Two clients: headless Chromium (the browser the portal's pages run in,
signed in with a session cookie, stamping each line in page JavaScript with ``performance.timeOrigin +
performance.now()`` on the same host clock) and a Python ``websockets`` client. Two runs per channel layer
and client:

- paced: --lines lines at --rate lines per second (the goal rate): latency p50 / p95 / max;
- burst: --lines lines as fast as the task can write them: throughput (lines per second) and latency.

Every run checks that every line arrived once, in order.

What the figures measure: the log consumer does not use the channel layer. It tails the persisted log
through the backend protocol (``follow_log``: a 50 ms poll of the file locally) in a thread per socket and
sends frames straight down that socket; nothing goes through ``group_send``. The runs are repeated with
the in-memory and the Redis channel layer configured (REDIS_URL) to show the relay does not depend on
it; a difference between them is noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR_DIR = Path(tempfile.mkdtemp(prefix="easyai-bench-relay-"))
DB_URL = f"sqlite:///{VAR_DIR / 'bench.sqlite3'}"
os.environ.update(
    DJANGO_SETTINGS_MODULE="easyai_site.settings",
    EASYAI_VAR_DIR=str(VAR_DIR),
    DATABASE_URL=DB_URL,
    EASYAI_Q_SYNC="1",  # the submit worker runs inline: the job starts at submit
    EASYAI_LOG_LEVEL="WARNING",
    # Playwright's sync API keeps an event loop in this thread; the ORM calls beside it are plain blocking calls.
    DJANGO_ALLOW_ASYNC_UNSAFE="1",
)
os.environ.pop("REDIS_URL", None)  # this process needs no layer; each daphne gets the one measured

import django  # noqa: E402

from easyai_site.prepare import prepare  # noqa: E402

prepare()  # var/ and its secret key, as the portal's entry points make them (the portal it starts shares them)
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

# The task: wait for the go file, then write lines "<n> <time_ns>\n", one write each, at a rate (0: at once).
WRITER = r"""
import os, sys, time
lines, rate = int(sys.argv[1]), float(sys.argv[2])
go = os.path.join(os.environ["share_dir"], "go")
while not os.path.exists(go):
    time.sleep(0.005)
out = getattr(sys.stdout.buffer, "raw", sys.stdout.buffer)  # unbuffered: each line is one write to the log
start = time.perf_counter()
for n in range(1, lines + 1):
    if rate and n % 50 == 0:
        ahead = start + n / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    out.write(b"%d %d\n" % (n, time.time_ns()))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(redis_url: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "easyai_site.asgi:application"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daphne did not start: {process.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.05)


def set_up() -> tuple[object, str]:
    from django.contrib.auth import get_user_model

    from clusters.models import Cluster
    from teams.models import Membership, Team
    from teams.services import token_create

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pass-123")
    team = Team.objects.create(name="Bench", slug="bench")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    Cluster.objects.create(name="local", kind="local", is_default=True, settings={"cpu": 4, "stop_grace": 1})
    return user, token_create(user=user)[1]


# In the page: open the log socket, stamp every line on receipt, check order, resolve at the end frame.
BROWSER_CLIENT = r"""
([url, lines]) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const latencies = new Float64Array(lines);
  let expected = 1, buffer = "", firstWrite = 0, lastReceipt = 0, error = null;
  window.__started = false;
  ws.onmessage = (event) => {
    const received = performance.timeOrigin + performance.now();
    const frame = JSON.parse(event.data);
    if (frame.type === "start") { window.__started = true; return; }
    if (frame.type === "end") {
      ws.close();
      resolve({state: frame.state, count: expected - 1, rest: buffer, error, firstWrite, lastReceipt,
               latencies: Array.from(latencies.subarray(0, expected - 1))});
      return;
    }
    if (frame.type !== "log") { error = error || ("unexpected frame " + event.data.slice(0, 200)); return; }
    buffer += frame.data;
    const parts = buffer.split("\n");
    buffer = parts.pop();
    for (const line of parts) {
      const [number, written] = line.split(" ");
      if (Number(number) !== expected) {
        error = error || ("line " + number + " arrived where line " + expected + " was due");
        continue;
      }
      const writtenMs = Number(BigInt(written) / 1000n) / 1000;
      if (!firstWrite) firstWrite = writtenMs;
      latencies[expected - 1] = received - writtenMs;
      expected += 1;
    }
    lastReceipt = received;
  };
  ws.onerror = () => { error = error || "socket error"; };
})
"""


def submit_writer(user, lines: int, rate: float):
    from clusters.backends.contract import storage
    from jobs import services

    job = services.job_submit(
        user=user,
        data={
            "name": "relay",
            "framework": "batch",
            "command": [sys.executable, "-c", WRITER, str(lines), str(rate)],
            "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "512Mi"}},
        },
    )
    go = storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "share_dir") / "go"
    return job, go


def summary(latencies: list[float], lines: int, first_write_ms: float, last_receipt_ms: float) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "lines": lines,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "max_ms": latencies[-1],
        "lines_per_s": lines / ((last_receipt_ms - first_write_ms) / 1e3),
    }


def run_browser(page, user, port: int, lines: int, rate: float) -> dict[str, float]:
    job, go = submit_writer(user, lines, rate)
    url = f"ws://127.0.0.1:{port}/ws/jobs/{job.public_id}/tasks/main-0/log/?offset=0"
    page.evaluate("() => { window.__result = null; window.__started = false; }")
    page.evaluate(f"(args) => {{ window.__result = ({BROWSER_CLIENT})(args); }}", [url, lines])
    page.wait_for_function("() => window.__started === true", timeout=30_000)
    go.touch()
    result = page.evaluate("() => window.__result")  # waits for the promise: the end frame
    if result["error"] or result["count"] != lines or result["rest"] or result["state"] != "succeeded":
        raise SystemExit(
            f"browser: {result['count']} of {lines} lines, state {result['state']}: {result['error'] or 'incomplete'}"
        )
    return summary(result["latencies"], lines, result["firstWrite"], result["lastReceipt"])


def run(user, token: str, port: int, lines: int, rate: float) -> dict[str, float]:
    job, go = submit_writer(user, lines, rate)
    url = f"ws://127.0.0.1:{port}/ws/jobs/{job.public_id}/tasks/main-0/log/?offset=0"
    latencies: list[float] = []
    expected = 1
    buffer = b""
    first_write = last_receipt = 0
    with connect(
        url,
        origin=f"http://127.0.0.1:{port}",
        additional_headers={"Authorization": f"Token {token}"},
        max_size=4 * 2**20,
        compression=None,
    ) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "start"
        go.touch()
        while True:
            frame = json.loads(ws.recv(timeout=60))
            received = time.time_ns()
            if frame["type"] == "end":
                assert frame["state"] == "succeeded", frame
                break
            assert frame["type"] == "log", frame
            buffer += frame["data"].encode()
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                try:
                    number, written = line.split()
                except ValueError:
                    raise SystemExit(f"not a line of the writer: {line[:200]!r}") from None
                if int(number) != expected:
                    raise SystemExit(f"line {number} arrived where line {expected} was due: dropped or reordered")
                expected += 1
                written_ns = int(written)
                first_write = first_write or written_ns
                latencies.append((received - written_ns) / 1e6)
            last_receipt = received
    if expected - 1 != lines or buffer:
        raise SystemExit(f"{expected - 1} of {lines} lines arrived")
    return summary(latencies, lines, first_write / 1e6, last_receipt / 1e6)


def open_browser(stack, port: int):
    """Headless Chromium signed in to the portal at port (session cookie), on one of its pages."""
    from django.test import Client
    from playwright.sync_api import sync_playwright

    client = Client()
    client.login(username="bench", password="bench-pass-123")
    playwright = stack.enter_context(sync_playwright())
    browser = playwright.chromium.launch(
        executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
    )
    stack.callback(browser.close)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": f"http://127.0.0.1:{port}"}]
    )
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{port}/jobs/")
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20_000, help="lines per second of the paced run")
    parser.add_argument("--layers", default="memory,redis")
    parser.add_argument("--clients", default="browser,python", help="browser (headless Chromium), python")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    user, token = set_up()
    print(f"log relay: {args.lines:,} lines per run; daphne {sys.version.split()[0]}; consumer tails the log file")
    print("(the log consumer does not use the channel layer: both layers run the same path)\n")
    print(f"{'layer':8} {'client':8} {'run':22} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'lines/s':>10}  check")
    failed = False
    for layer in args.layers.split(","):
        process, port = start_daphne(args.redis_url if layer == "redis" else None)
        try:
            for client in args.clients.split(","):
                with contextlib.ExitStack() as stack:
                    page = open_browser(stack, port) if client == "browser" else None
                    for name, rate in ((f"paced {args.rate:,.0f}/s", args.rate), ("burst (unpaced)", 0.0)):
                        if page is not None:
                            result = run_browser(page, user, port, args.lines, rate)
                        else:
                            result = run(user, token, port, args.lines, rate)
                        print(
                            f"{layer:8} {client:8} {name:22} {result['p50_ms']:8.1f} {result['p95_ms']:8.1f} "
                            f"{result['max_ms']:8.1f} {result['lines_per_s']:10,.0f}  "
                            f"{result['lines']:,} lines, in order, none missing"
                        )
                        if name.startswith("paced") and result["p95_ms"] >= 100:
                            failed = True
                        if not name.startswith("paced") and result["lines_per_s"] < 20_000:
                            failed = True
        finally:
            process.terminate()
            process.wait(timeout=10)
    print("\ngoals: paced p95 under 100 ms; burst at least 20,000 lines/s:", "missed" if failed else "met")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
