"""Predict latency through the serving URL against straight to the model server, side by side in one run.

    .venv/bin/python bench/serving.py [--requests 500] [--concurrent 2000] [--clients 16]

A real scikit-learn model (logistic regression on the iris flowers) is registered and served on the local
backend: one revision, the KServe model server as a task (the serving extras must be installed:
requirements-serving.txt). The portal runs in daphne (the server ``manage.py serve`` runs, in a subprocess)
on a throw-away SQLite database. With aiohttp as the client (one session, kept-alive connections), each path
gets the same V1 predict call (``POST …/v1/models/iris:predict``, three instances):

- straight: the model server's own port on this host;
- through the portal: ``/serving/{team}/iris/…`` on the endpoint origin with an API token, relayed by the
  serving proxy (its route and permission answer reused for a couple of seconds) to the serving revision.

Runs: --requests calls one after another (p50, p95), then --concurrent calls from --clients clients at once
(calls per second, p50, p95).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR_DIR = Path(tempfile.mkdtemp(prefix="easyai-bench-serving-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="easyai_site.settings",
    EASYAI_VAR_DIR=str(VAR_DIR),
    DATABASE_URL=f"sqlite:///{VAR_DIR / 'bench.sqlite3'}",
    EASYAI_Q_SYNC="1",  # the revision's job is submitted inline
    EASYAI_LOG_LEVEL="WARNING",
)
os.environ.pop("REDIS_URL", None)

import aiohttp  # noqa: E402
import django  # noqa: E402
from _load import concurrent, sequential  # noqa: E402
from _setup import local_team, start_daphne  # noqa: E402

from easyai_site.prepare import prepare  # noqa: E402

prepare()
django.setup()


BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}'


def model_archive() -> bytes:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=200).fit(features, labels)
    raw = io.BytesIO()
    joblib.dump(model, raw)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.joblib", raw.getvalue())
    return archive.getvalue()


def start_service():
    from jobs.workers import sync as job_sync
    from serving import runtime, services
    from serving.models import InferenceService
    from teams.services import token_create

    user, team, cluster = local_team()
    services.version_push(user=user, team=team, name="iris", archive=model_archive(), model_format="sklearn")
    service = services.service_create(user=user, team=team, name="iris", model="iris", memory="1Gi")
    deadline = time.monotonic() + 120
    while True:
        job_sync.cluster_sync(cluster)
        runtime.sync_cluster(cluster)
        service = InferenceService.objects.select_related("primary__job", "next__job").get(pk=service.pk)
        if service.primary is not None:
            task = service.primary.job.tasks.get()
            return cluster, service, task.endpoints["http"], token_create(user=user)[1]
        if service.next is None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not start: {service.message}")
        time.sleep(0.2)


async def one(session: aiohttp.ClientSession, url: str, headers: dict) -> float:
    start = time.perf_counter()
    async with session.post(url, data=BODY, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status} {await response.text()}")
    return time.perf_counter() - start


async def measure(paths: list[tuple[str, str, dict]], args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        for _label, url, headers in paths:  # warm every path up
            for _ in range(30):
                await one(session, url, headers)
        rows = []
        for label, url, headers in paths:
            rows.append((label, "sequential", await sequential(partial(one, session, url, headers), args.requests)))
        for label, url, headers in paths:
            rows.append((label, f"{args.clients} clients", await concurrent(partial(one, session, url, headers), args.concurrent, args.clients)))
    print(f"{'path':26} {'run':12} {'calls/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for label, run, result in rows:
        print(f"{label:26} {run:12} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p95_ms']:8.2f}")
    straight, through = rows[0][2], rows[1][2]
    print(
        f"\nthrough the portal, sequential: +{through['p50_ms'] - straight['p50_ms']:.2f} ms p50, "
        f"+{through['p95_ms'] - straight['p95_ms']:.2f} ms p95 per call"
    )
    straight, through = rows[2][2], rows[3][2]
    print(
        f"through the portal, {args.clients} clients: +{through['p50_ms'] - straight['p50_ms']:.2f} ms p50, "
        f"+{through['p95_ms'] - straight['p95_ms']:.2f} ms p95; {through['rps'] / straight['rps']:.0%} of "
        "straight's calls per second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="sequential calls per path")
    parser.add_argument("--concurrent", type=int, default=2000, help="calls per path in the concurrent run")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    from endpoints.origin import origin

    cluster, service, address, token = start_service()
    process, port = start_daphne()
    path = f"/serving/{service.team.slug}/iris/v1/models/iris:predict"
    paths = [
        ("straight to the server", f"http://{address}/v1/models/iris:predict", {"Content-Type": "application/json"}),
        (
            "through the portal",
            f"http://127.0.0.1:{port}{path}",
            {"Content-Type": "application/json", "Authorization": f"Token {token}", "Host": f"{origin().host}:{port}"},
        ),
    ]
    print(
        f"serving: POST …/v1/models/iris:predict (3 instances), scikit-learn on KServe's model server on the local "
        f"backend, portal in daphne; {os.cpu_count()} CPUs\n"
    )
    try:
        asyncio.run(measure(paths, args))
    finally:
        process.terminate()
        process.wait(timeout=10)
        cluster.backend().stop(service.primary.job.public_id)


if __name__ == "__main__":
    main()
