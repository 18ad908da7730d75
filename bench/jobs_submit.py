"""Submitting 1,000 jobs through the API with the fake backend: jobs per second and queries per submit.

Each POST runs the whole path a user's submit takes: spec validation, name
resolution, quota check, the rows, and (the workers running inline) the submit
to the backend and the queued -> pending transition.

    .venv/bin/python bench/jobs_submit.py [--jobs 1000]
"""

import argparse
import json
import time

from _setup import database_label, django_up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    teardown = django_up()
    try:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        from clusters.backends import use_backend
        from clusters.backends.fake import FakeBackend
        from clusters.models import Cluster
        from jobs.models import Job
        from teams.models import Membership, Team

        cluster = Cluster.objects.create(name="fake", kind="local", is_default=True)
        backend = FakeBackend()
        use_backend("fake", backend)
        user = get_user_model().objects.create_user("bench", password="x")
        team = Team.objects.create(name="Bench", slug="bench")
        Membership.objects.create(team=team, user=user, role="admin")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        spec = {
            "name": "bench",
            "framework": "pytorch",
            "image": "pytorch/pytorch:2.3",
            "command": "python train.py",
            "roles": {"master": {"replicas": 1}, "worker": {"replicas": 3, "cpu": "2", "memory": "4Gi"}},
        }
        body = json.dumps(spec)
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            for i in range(args.jobs):
                response = client.post("/api/v1/jobs/", body, content_type="application/json")
                if response.status_code != 201:
                    raise SystemExit(f"submit {i} answered {response.status_code}: {response.content[:300]!r}")
            elapsed = time.perf_counter() - start
        pending = Job.objects.filter(state="pending").count()
        print(f"database: {database_label()}; cluster: {cluster.name} (fake backend)")
        print(f"submitted {args.jobs} jobs in {elapsed:.2f} s: {args.jobs / elapsed:.1f} jobs/s")
        print(f"queries per submit (API + submit worker): {len(queries) / args.jobs:.1f}")
        print(f"jobs pending on the backend afterwards: {pending}; backend submits: {backend.submits()}")
    finally:
        teardown()


if __name__ == "__main__":
    main()
