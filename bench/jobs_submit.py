"""Submitting 1,000 jobs through the API with the fake backend: jobs per second and queries per submit.

Two figures, as a deployment splits the work:
- the API: spec validation, name resolution, quota check, the job and task rows, and the enqueue
  (django-q2's ORM broker, as on the embedded defaults);
- the submit worker: the hand-over to the backend and the queued -> pending transition.

    .venv/bin/python bench/jobs_submit.py [--jobs 1000] [--repeat 1]

``--repeat N`` times the API N times over (N x --jobs submits, one after the other on the same database) and
adds the median and the spread of the N figures, and the CPU time this process spent per submit (the
database's own work is not in it): on a shared machine one run says little.
"""

import argparse
import json
import os
import statistics
import time

from _setup import database_label, django_up


class QueryCounter:
    """Statements sent through a cursor (COMMIT is not: the driver commits); ``control`` of them are the
    transaction's own (SQLite's BEGIN, savepoints)."""

    def __init__(self) -> None:
        self.count = 0
        self.control = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if sql.startswith(("BEGIN", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            self.control += 1
        return execute(sql, params, many, context)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="time the API this many times (median and spread)")
    args = parser.parse_args()
    os.environ["EASYAI_Q_SYNC"] = "0"  # the API only enqueues; the worker step is timed on its own below
    teardown = django_up()
    try:
        import logging

        from django.contrib.auth import get_user_model
        from django.db import connection
        from rest_framework.test import APIClient

        from clusters.backends import use_backend
        from clusters.backends.fake import FakeBackend
        from clusters.models import Cluster
        from jobs import tasks
        from jobs.models import Job
        from teams.models import Membership, Team
        from teams.services import token_create

        logging.getLogger("django-q").setLevel(logging.WARNING)
        cluster = Cluster.objects.create(name="fake", kind="local", is_default=True)
        backend = FakeBackend()
        use_backend("fake", backend)
        user = get_user_model().objects.create_user("bench", password="x")
        team = Team.objects.create(name="Bench", slug="bench")
        Membership.objects.create(team=team, user=user, role="admin")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)[1]}")
        spec = {
            "name": "bench",
            "framework": "pytorch",
            "image": "pytorch/pytorch:2.3",
            "command": "python train.py",
            "roles": {"master": {"replicas": 1}, "worker": {"replicas": 3, "cpu": "2", "memory": "4Gi"}},
        }
        body = json.dumps(spec)

        api_runs = []
        for _run in range(max(args.repeat, 1)):
            api_queries = QueryCounter()
            with connection.execute_wrapper(api_queries):
                start, cpu_start = time.perf_counter(), time.process_time()
                for i in range(args.jobs):
                    response = client.post("/api/v1/jobs/", body, content_type="application/json")
                    if response.status_code != 201:
                        raise SystemExit(f"submit {i} answered {response.status_code}: {response.content[:300]!r}")
                api_elapsed = time.perf_counter() - start
            api_runs.append((api_elapsed, api_queries, time.process_time() - cpu_start))
        jobs = args.jobs * len(api_runs)

        worker_queries = QueryCounter()
        pks = list(Job.objects.order_by("pk").values_list("pk", flat=True))
        with connection.execute_wrapper(worker_queries):
            start = time.perf_counter()
            for pk in pks:
                tasks.submit_job(pk)
            worker_elapsed = time.perf_counter() - start

        pending = Job.objects.filter(state="pending").count()
        print(f"database: {database_label()}; cluster: {cluster.name} (fake backend); {jobs} jobs of 4 tasks")
        for api_elapsed, api_queries, _cpu in api_runs:
            print(
                f"API: {args.jobs} submits in {api_elapsed:.2f} s: {args.jobs / api_elapsed:.1f} jobs/s, "
                f"{api_elapsed / args.jobs * 1000:.1f} ms and {api_queries.count / args.jobs:.1f} queries per submit "
                f"({(api_queries.count - api_queries.control) / args.jobs:.1f} besides BEGIN and savepoints)"
            )
        if len(api_runs) > 1:
            rates = sorted(args.jobs / elapsed for elapsed, _queries, _cpu in api_runs)
            cpu_ms = statistics.median(cpu for _elapsed, _queries, cpu in api_runs) / args.jobs * 1000
            print(
                f"API over {len(rates)} runs: median {statistics.median(rates):.1f} jobs/s "
                f"({1000 / statistics.median(rates):.1f} ms per submit, {cpu_ms:.1f} ms of it this process's CPU), "
                f"min {rates[0]:.1f}, max {rates[-1]:.1f} jobs/s"
            )
        print(
            f"submit worker: {worker_elapsed:.2f} s: {jobs / worker_elapsed:.1f} jobs/s, "
            f"{worker_queries.count / jobs:.1f} queries per job"
        )
        total = sum(elapsed for elapsed, _queries, _cpu in api_runs) + worker_elapsed
        print(
            f"end to end: {jobs / total:.1f} jobs/s; pending afterwards: {pending}; backend submits: {backend.submits()}"
        )
    finally:
        teardown()


if __name__ == "__main__":
    main()
