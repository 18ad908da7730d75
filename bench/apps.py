"""Apps: wake time (a request to a sleeping app, to the first byte of the app), and a page load through the
proxy against straight to the app, side by side in one run.

    .venv/bin/python bench/apps.py [--wakes 3] [--requests 300] [--concurrent 1000] [--clients 16]

The portal runs as ``manage.py serve`` runs it (daphne, its worker and its scheduler, in subprocesses) on a
throw-away SQLite database with the local backend, as the embedded default does. The examples'
Streamlit and Gradio apps are published through the API. For each:

- wake: the app is put to sleep (its run stopped, as the clock does after its idle time), then one client asks
  for its page with an API token, polling every 0.1 s while it answers 503: the time from the first request
  to the first byte of the app's own answer (the new run submitted by the worker, the process started, the
  server up, its health check answered), --wakes times;
- page load: the app's HTML page (GET {base}/) and its largest script, straight to the app's port on this host
  and through ``/apps/{team}/{name}/`` on the endpoint origin, --requests one after another (p50, p95) and
  --concurrent from --clients clients at once (requests per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR_DIR = Path(tempfile.mkdtemp(prefix="easyai-bench-apps-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="easyai_site.settings",
    EASYAI_VAR_DIR=str(VAR_DIR),
    DATABASE_URL=f"sqlite:///{VAR_DIR / 'bench.sqlite3'}",
    EASYAI_LOG_LEVEL="WARNING",
)
os.environ.pop("REDIS_URL", None)
os.environ.pop("EASYAI_Q_SYNC", None)

import aiohttp  # noqa: E402
import django  # noqa: E402
from _load import concurrent, sequential  # noqa: E402
from _setup import free_port, local_team  # noqa: E402

from easyai_site.prepare import prepare  # noqa: E402

prepare()
django.setup()


def serve(port: int, endpoints_port: int) -> subprocess.Popen:
    env = dict(os.environ, EASYAI_ENDPOINTS_URL=f"http://localhost:{endpoints_port}", EASYAI_SITE_URL=f"http://127.0.0.1:{port}")
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--endpoints-port", str(endpoints_port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def first_byte(session: aiohttp.ClientSession, url: str, headers: dict, every: float = 0.1) -> tuple[float, int]:
    """Seconds from the first request to the first byte of a 200, polling while the answer is 503."""
    started = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        async with session.get(url, headers=headers) as response:
            await response.content.readany()
            if response.status == 200:
                return time.perf_counter() - started, polls
            if response.status not in (502, 503):
                raise SystemExit(f"{url}: {response.status} {await response.text()}")
        if time.perf_counter() - started > 300:
            raise SystemExit(f"{url} did not answer within 300 s")
        await asyncio.sleep(every)


async def one(session: aiohttp.ClientSession, url: str, headers: dict) -> float:
    start = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status}")
    return time.perf_counter() - start


def app_row(name: str):
    from apps.models import App

    return App.objects.select_related("job", "team").prefetch_related("job__tasks").get(name=name)


async def bench_app(session, args, api: str, token: str, endpoints: str, name: str, kind: str, example: str) -> list:
    from apps import services

    auth = {"Authorization": f"Token {token}"}
    body = {"name": name, "kind": kind, "entry": "app.py", "source": f"apps/{example}", "cpu": "1", "memory": "1Gi"}
    started = time.perf_counter()
    async with session.post(f"{api}/api/v1/apps/", json=body, headers=auth) as response:
        answer = await response.json()
        if response.status != 201:
            raise SystemExit(f"publish {name}: {response.status} {json.dumps(answer)}")
    base = f"/apps/bench/{name}/"
    through = f"{endpoints}{base}"
    host = {"Host": endpoints.split("//", 1)[1], **auth}
    publish_s, _polls = await first_byte(session, through, host)
    publish_s = time.perf_counter() - started

    wakes = []
    for _ in range(args.wakes):
        app = await asyncio.to_thread(app_row, name)
        await asyncio.to_thread(services.app_sleep, app=app)
        job_id = app.job.public_id
        # Its run is gone (the worker stopped it): the next request meets a sleeping app.
        while True:
            fresh = await asyncio.to_thread(app_row, name)
            if fresh.job.public_id == job_id and fresh.job.state == "stopped":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        seconds, polls = await first_byte(session, through, host)
        fresh = await asyncio.to_thread(app_row, name)
        wakes.append((seconds, polls, fresh.startup_seconds))

    app = await asyncio.to_thread(app_row, name)
    address = app._task().endpoints["web"]
    straight = f"http://{address}{base}"
    # Its largest script, as a browser loads it with the page.
    async with session.get(through, headers=host) as response:
        page = await response.text()
    scripts = re.findall(r'src="([^"]+\.js)"', page)
    rows = [("page", straight, {}, through, host)]
    if scripts:
        script = scripts[0] if scripts[0].startswith("/") else base + scripts[0].lstrip("./")
        rows.append(("script", f"http://{address}{script}", {}, f"{endpoints}{script}", host))
    results = []
    for what, plain_url, plain_headers, proxied_url, proxied_headers in rows:
        for url, headers in ((plain_url, plain_headers), (proxied_url, proxied_headers)):
            for _ in range(20):
                await one(session, url, headers)
        seq_plain = await sequential(partial(one, session, plain_url, plain_headers), args.requests)
        seq_proxy = await sequential(partial(one, session, proxied_url, proxied_headers), args.requests)
        con_plain = await concurrent(partial(one, session, plain_url, plain_headers), args.concurrent, args.clients)
        con_proxy = await concurrent(partial(one, session, proxied_url, proxied_headers), args.concurrent, args.clients)
        results.append((what, seq_plain, seq_proxy, con_plain, con_proxy))
    return [name, kind, publish_s, wakes, results]


async def measure(args, api: str, token: str, endpoints: str) -> list:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        out = []
        for name, kind, example in (("iris-streamlit", "streamlit", "streamlit-demo"), ("iris-gradio", "gradio", "gradio-demo")):
            out.append(await bench_app(session, args, api, token, endpoints, name, kind, example))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakes", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per path")
    parser.add_argument("--concurrent", type=int, default=1000, help="requests per path in the concurrent run")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    from django.conf import settings

    from clusters.backends.contract import storage
    from teams.services import token_create

    user, _team, cluster = local_team()
    cluster.settings = {"cpu": 4, "memory": "8Gi", "stop_grace": 2}
    cluster.save()
    workspace = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), user.username)
    for example in ("streamlit-demo", "gradio-demo"):
        shutil.copytree(REPO / "examples" / "apps" / example, workspace / "apps" / example)
    token = token_create(user=user)[1]
    port, endpoints_port = free_port(), free_port()
    process = serve(port, endpoints_port)
    try:
        deadline = time.monotonic() + 60
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the portal did not start") from None
                time.sleep(0.2)
        results = asyncio.run(measure(args, f"http://127.0.0.1:{port}", token, f"http://localhost:{endpoints_port}"))
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        from jobs.models import Job

        backend = cluster.backend()
        for job_id in Job.objects.filter(framework="app").values_list("public_id", flat=True):
            backend.stop(job_id)

    print(f"apps: the examples published on the local backend, portal as `manage.py serve` (SQLite); {os.cpu_count()} CPUs\n")
    for name, kind, publish_s, wakes, rows in results:
        print(f"{name} ({kind}): publish to first byte {publish_s:.2f} s")
        for i, (seconds, polls, startup) in enumerate(wakes, 1):
            print(f"  wake {i}: request to first byte {seconds:.2f} s ({polls} requests; start-up recorded {startup} s)")
        if wakes:
            print(f"  wake median: {statistics.median(w[0] for w in wakes):.2f} s")
        print(f"  {'what':8} {'path':10} {'run':12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
        for what, seq_plain, seq_proxy, con_plain, con_proxy in rows:
            for label, run, r in (
                ("straight", "sequential", seq_plain),
                ("proxied", "sequential", seq_proxy),
                ("straight", f"{args.clients} clients", con_plain),
                ("proxied", f"{args.clients} clients", con_proxy),
            ):
                print(f"  {what:8} {label:10} {run:12} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f}")
            print(
                f"  {what}: through the proxy +{seq_proxy['p50_ms'] - seq_plain['p50_ms']:.2f} ms p50 sequential; "
                f"{con_proxy['rps'] / con_plain['rps']:.0%} of straight's requests per second at {args.clients} clients"
            )
        print()


if __name__ == "__main__":
    main()
