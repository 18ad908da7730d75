"""The jobs list endpoint and page with 100,000 jobs in the database: median milliseconds and query count.

    .venv/bin/python bench/jobs_list.py [--jobs 100000] [--repeat 20]
"""

import argparse
import time

from _setup import database_label, django_up, people_and_teams, time_cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="print where one call of each case spends its time")
    args = parser.parse_args()
    teardown = django_up()
    try:
        from django.test import Client
        from rest_framework.test import APIClient

        from jobs.models import Job
        from teams.services import token_create

        cluster, users, teams = people_and_teams()
        viewer = users[0]
        start = time.perf_counter()
        states = ["queued", "pending", "running", "success", "failed", "stopped"]
        batch = []
        for i in range(args.jobs):
            batch.append(
                Job(
                    public_id=f"j-{i:08x}", name=f"job-{i}", team=teams[i % 5], owner=users[i % 10], cluster=cluster,
                    framework="pytorch", spec={}, state=states[i % 6],
                )
            )
            if len(batch) == 5000:
                Job.objects.bulk_create(batch)
                batch = []
        Job.objects.bulk_create(batch)
        print(f"database: {database_label()}; {Job.objects.count()} jobs created in {time.perf_counter() - start:.1f} s")
        print(f"the viewer sees {Job.objects.filter(team=teams[0]).count()} of them (one team of five)")

        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=viewer)[1]}")
        page = Client()
        page.force_login(viewer)
        cases = {
            "GET /api/v1/jobs/": lambda: api.get("/api/v1/jobs/"),
            "GET /api/v1/jobs/?state=running": lambda: api.get("/api/v1/jobs/?state=running"),
            "GET /api/v1/jobs/?page=100": lambda: api.get("/api/v1/jobs/?page=100"),
            "GET /jobs/ (page)": lambda: page.get("/jobs/"),
            "GET /jobs/?state=running (page)": lambda: page.get("/jobs/?state=running"),
        }
        time_cases(cases, args.repeat, profile=args.profile)
    finally:
        teardown()


if __name__ == "__main__":
    main()
