"""The endpoint proxy's cost: Jupyter's /api/status through the portal against straight to Jupyter.

    .venv/bin/python bench/proxy.py [--requests 500] [--concurrent 2000] [--clients 16] [--messages 300]

A real JupyterLab runs as a notebook on the local backend (the notebook extras must be installed:
requirements-notebooks.txt); the portal runs in daphne (the production server, in a subprocess) on a
throw-away SQLite database. Side by side, with aiohttp as the client (one session, kept-alive connections):

- sequential: --requests GETs one after another: requests per second, p50 and p95 latency;
- concurrent: --concurrent GETs from --clients clients at once: requests per second, p95 latency;
- kernel socket: --messages kernel_info round trips, one after another, over a kernel's channels websocket
  (a kernel started straight, reached on each path): round trips per second, p50 and p95.

The proxy answers on the endpoint origin (http://localhost:<port>, apart from the portal's 127.0.0.1), and
each request through it is authenticated either as a script's, by an API token in the Authorization header
(read once, its answer reused for a few seconds), or as a browser's, by the per-endpoint credential cookie a portal ticket gave it (a
signature check; its user reused for a few seconds), then checked against the permission module (its answer
reused for a few seconds) and relayed by the process's one aiohttp session to the server's loopback port with
the Jupyter token the portal makes. Straight to Jupyter, the client sends that token itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR_DIR = Path(tempfile.mkdtemp(prefix="easyai-bench-proxy-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="easyai_site.settings",
    EASYAI_VAR_DIR=str(VAR_DIR),
    DATABASE_URL=f"sqlite:///{VAR_DIR / 'bench.sqlite3'}",
    EASYAI_Q_SYNC="1",  # the submit worker runs inline: the notebook starts at create
    EASYAI_LOG_LEVEL="WARNING",
)
os.environ.pop("REDIS_URL", None)

import aiohttp  # noqa: E402
import django  # noqa: E402
from _load import concurrent, sequential, summary  # noqa: E402
from _setup import local_team, start_daphne  # noqa: E402

from easyai_site.prepare import prepare  # noqa: E402

prepare()  # var/ and its secret key, as the portal's entry points make them (the portal it starts shares them)
django.setup()



def start_notebook():
    from jobs import workers as job_workers
    from notebooks import services
    from notebooks.models import Notebook
    from teams.services import token_create

    user, team, cluster = local_team()
    notebook = services.notebook_create(user=user, team=team, name="bench", cpu="1", memory="1Gi")
    deadline = time.monotonic() + 120
    while True:
        job_workers.cluster_sync(cluster)
        notebook = Notebook.objects.select_related("job").prefetch_related("job__tasks").get(pk=notebook.pk)
        if notebook.state == "running":
            return cluster, notebook, token_create(user=user)[1]
        if notebook.job.is_final or time.monotonic() > deadline:
            raise SystemExit(f"the notebook did not start: {notebook.job.state} {notebook.job.message}")
        time.sleep(0.2)


async def wait_answering(session: aiohttp.ClientSession, url: str, headers: dict) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with session.get(url, headers=headers) as response:
                if response.status == 200:
                    await response.read()
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never answered 200")
        await asyncio.sleep(0.2)


async def one(session: aiohttp.ClientSession, url: str, headers: dict) -> float:
    start = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status}")
    return time.perf_counter() - start


def credential_cookie(notebook) -> str:
    """What a browser holds after the portal's ticket redirect: the endpoint's credential cookie."""
    from endpoints import origin as endpoint_origin
    from notebooks.models import NOTEBOOK_TASK

    job_id = notebook.job.public_id
    state = endpoint_origin.state_new()
    ticket = endpoint_origin.ticket_issue(notebook.owner, job_id, NOTEBOOK_TASK, "jupyter", state)
    key = endpoint_origin.endpoint_key(job_id, NOTEBOOK_TASK, "jupyter")
    payload = endpoint_origin.ticket_redeem(ticket, key, [state])
    return f"{endpoint_origin.COOKIE_NAME}={endpoint_origin.credential_issue(payload)}"


def paths_of(port: int, notebook, token: str) -> list[tuple[str, str, dict]]:
    """(label, URL, headers) of each way to Jupyter's status: made before the event loop runs (they read rows)."""
    from endpoints.proxy import upstream_token
    from notebooks.models import NOTEBOOK_TASK, endpoint_path

    job_id = notebook.job.public_id
    path = endpoint_path(job_id, NOTEBOOK_TASK, "jupyter") + "api/status"
    jupyter = upstream_token(notebook.cluster, "notebook", job_id, "jupyter")
    paths = [
        ("straight to Jupyter", f"http://{notebook.endpoint_address}{path}",
         {"Authorization": f"token {jupyter}"} if jupyter else {}),
        ("proxy, API token", f"http://localhost:{port}{path}", {"Authorization": f"Token {token}"}),
        ("proxy, cookie", f"http://localhost:{port}{path}", {"Cookie": credential_cookie(notebook)}),
    ]  # fmt: skip
    return paths


def kernel_message(session_id: str) -> tuple[str, dict]:
    msg_id = uuid.uuid4().hex
    return msg_id, {
        "header": {"msg_id": msg_id, "username": "bench", "session": session_id, "msg_type": "kernel_info_request",
                   "version": "5.3", "date": datetime.now(UTC).isoformat()},
        "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell", "buffers": [],
    }  # fmt: skip


async def kernel_round_trips(session: aiohttp.ClientSession, url: str, headers: dict, count: int) -> dict[str, float]:
    """kernel_info_request -> kernel_info_reply over the kernel's channels socket, one after another."""
    session_id = uuid.uuid4().hex
    samples = []
    async with session.ws_connect(url, headers=headers, max_msg_size=0) as socket_:
        for _ in range(count + 10):
            msg_id, message = kernel_message(session_id)
            start = time.perf_counter()
            await socket_.send_str(json.dumps(message))
            while True:
                frame = await socket_.receive()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    raise SystemExit(f"{url}: the socket ended ({frame.type})")
                reply = json.loads(frame.data)
                if reply.get("channel") == "shell" and reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
            samples.append(time.perf_counter() - start)
    samples = samples[10:]  # the first ones warm the path up
    return summary(samples, sum(samples))


async def measure_sockets(paths: list[tuple[str, str, dict]], args: argparse.Namespace) -> list:
    """A kernel's messages: a kernel started straight, then reached over its socket on each path."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        straight_url, straight_headers = paths[0][1], paths[0][2]
        base = straight_url.rsplit("api/status", 1)[0]
        async with session.post(base + "api/kernels", headers=straight_headers, json={}) as response:
            kernel = (await response.json())["id"]
        rows = []
        for label, url, headers in paths:
            ws_url = url.rsplit("api/status", 1)[0].replace("http://", "ws://") + f"api/kernels/{kernel}/channels"
            if "Cookie" in headers:  # a browser's socket carries the endpoint's own Origin
                headers = {**headers, "Origin": url.split("/endpoints/", 1)[0]}
            rows.append((label, "kernel socket", await kernel_round_trips(session, ws_url, headers, args.messages)))
        await session.delete(base + f"api/kernels/{kernel}", headers=straight_headers)
    return rows


async def measure(paths: list[tuple[str, str, dict]], args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        await wait_answering(session, paths[1][1], paths[1][2])
        for _label, url, headers in paths:  # warm every path up
            for _ in range(20):
                await one(session, url, headers)
        rows = []
        for label, url, headers in paths:
            rows.append((label, "sequential", await sequential(partial(one, session, url, headers), args.requests)))
        for label, url, headers in paths:
            result = await concurrent(partial(one, session, url, headers), args.concurrent, args.clients)
            rows.append((label, f"{args.clients} clients", result))
    rows += await measure_sockets(paths, args)
    print(f"{'path':22} {'run':14} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for label, run, result in rows:
        print(f"{label:22} {run:14} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p95_ms']:8.2f}")
    seq_direct = rows[0][2]
    for label, _run, result in rows[1 : len(paths)]:
        print(
            f"\n{label} overhead, sequential: +{result['p50_ms'] - seq_direct['p50_ms']:.2f} ms p50, "
            f"+{result['p95_ms'] - seq_direct['p95_ms']:.2f} ms p95 per request",
            end="",
        )
    sockets = rows[-len(paths) :]
    for label, _run, result in sockets[1:]:
        print(
            f"\n{label} overhead, kernel socket: +{result['p50_ms'] - sockets[0][2]['p50_ms']:.2f} ms p50 per "
            f"round trip ({result['rps'] / sockets[0][2]['rps']:.0%} of straight's messages per second)",
            end="",
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="sequential requests per path")
    parser.add_argument("--concurrent", type=int, default=2000, help="requests per path in the concurrent run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--messages", type=int, default=300, help="kernel_info round trips per path on the kernel socket")
    args = parser.parse_args()

    cluster, notebook, token = start_notebook()
    process, port = start_daphne()
    print(
        f"endpoint proxy: GET {notebook.path.rsplit('/', 1)[0]}/api/status, JupyterLab on the local backend, "
        f"portal in daphne; {os.cpu_count()} CPUs\n"
    )
    try:
        asyncio.run(measure(paths_of(port, notebook, token), args))
    finally:
        process.terminate()
        process.wait(timeout=10)
        cluster.backend().stop(notebook.job.public_id)


if __name__ == "__main__":
    main()
