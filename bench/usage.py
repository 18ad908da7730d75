"""The Usage page and API with 100,000 jobs accounted over a year: median milliseconds and query count.

    .venv/bin/python bench/usage.py [--jobs 100000] [--repeat 20] [--profile]

Five teams, ten users; each job has its JobUsage row (a day in the last year, figures and a cost). The viewer is
a member of one team (a fifth of the jobs); a platform admin asks for every team.
"""

import argparse
import os
import random
import time
from datetime import timedelta
from decimal import Decimal

from _setup import database_label, django_up, people_and_teams, time_cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="print where one call of each case spends its time")
    args = parser.parse_args()
    teardown = django_up()
    try:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.utils import timezone
        from rest_framework.test import APIClient

        from jobs.models import Job
        from monitoring.models import JobUsage
        from teams.services import token_create

        cluster, users, teams = people_and_teams()
        viewer = users[0]
        admin = get_user_model().objects.create_user("admin", password="x", is_staff=True)
        random.seed(16)
        today = timezone.localdate()
        start = time.perf_counter()
        batch: list = []
        for i in range(args.jobs):
            batch.append(
                Job(
                    public_id=f"j-{i:08x}",
                    name=f"job-{i}",
                    team=teams[i % 5],
                    owner=users[i % 10],
                    cluster=cluster,
                    framework="pytorch",
                    spec={},
                    state="success",
                )  # fmt: skip
            )
            if len(batch) == 5000:
                Job.objects.bulk_create(batch)
                batch = []
        Job.objects.bulk_create(batch)
        batch = []
        for job_id, team_id, owner_id in Job.objects.order_by("pk").values_list("pk", "team_id", "owner_id"):
            cores = random.choice((1, 2, 4, 8))
            hours = random.uniform(0.1, 24)
            gpus = random.choice((0, 0, 0, 1, 2, 8))
            batch.append(
                JobUsage(
                    job_id=job_id,
                    team_id=team_id,
                    owner_id=owner_id,
                    cluster=cluster,
                    day=today - timedelta(days=random.randrange(365)),
                    running_seconds=hours * 3600,
                    core_hours_requested=cores * hours,
                    core_hours_used=cores * hours * random.random(),
                    gib_hours_requested=4 * cores * hours,
                    gib_hours_used=3 * cores * hours * random.random(),
                    gpu_hours_requested=gpus * hours,
                    gpu_hours_used=gpus * hours * random.random(),
                    cost=Decimal(f"{cores * hours * 0.05 + gpus * hours * 2:.6f}"),
                    currency="USD",
                    closed=True,
                )  # fmt: skip
            )
            if len(batch) == 5000:
                JobUsage.objects.bulk_create(batch)
                batch = []
        JobUsage.objects.bulk_create(batch)
        print(
            f"database: {database_label()}; {JobUsage.objects.count()} jobs with their accounting created in "
            f"{time.perf_counter() - start:.1f} s"
        )
        print(f"the viewer's team has {JobUsage.objects.filter(team=teams[0]).count()} of them (one team of five)")

        year = f"from={(today - timedelta(days=364)).isoformat()}&to={today.isoformat()}"
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=viewer)[1]}")
        admin_api = APIClient()
        admin_api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=admin)[1]}")
        page = Client()
        page.force_login(viewer)
        admin_page = Client()
        admin_page.force_login(admin)
        cases = {
            "GET /api/v1/usage/?group_by=day (a year, one team)": lambda: api.get(
                f"/api/v1/usage/?{year}&group_by=day"
            ),
            "GET /api/v1/usage/?group_by=user (a year, one team)": lambda: api.get(
                f"/api/v1/usage/?{year}&group_by=user"
            ),
            "GET /api/v1/usage/?group_by=month (a year, one team)": lambda: api.get(
                f"/api/v1/usage/?{year}&group_by=month"
            ),
            "GET /api/v1/usage/?group_by=job (a year, one team: 1,000 rows)": lambda: api.get(
                f"/api/v1/usage/?{year}&group_by=job"
            ),
            "GET /api/v1/usage/?group_by=day (30 days, one team)": lambda: api.get("/api/v1/usage/?group_by=day"),
            "GET /api/v1/usage/?team=all&group_by=day (a year, admin, every team)": lambda: admin_api.get(
                f"/api/v1/usage/?team=all&{year}&group_by=day"
            ),
            "GET /api/v1/usage/?team=all&group_by=user (a year, admin, every team)": lambda: admin_api.get(
                f"/api/v1/usage/?team=all&{year}&group_by=user"
            ),
            "GET /usage/?group_by=day (page, a year, one team)": lambda: page.get(f"/usage/?{year}&group_by=day"),
            "GET /usage/?group_by=user (page, a year, one team)": lambda: page.get(f"/usage/?{year}&group_by=user"),
            "GET /usage/ (page, 30 days, one team)": lambda: page.get("/usage/"),
            "GET /usage/?team=all&group_by=day (page, a year, admin, every team)": lambda: admin_page.get(
                f"/usage/?team=all&{year}&group_by=day"
            ),
        }
        time_cases(cases, args.repeat, profile=args.profile)
        accounting_pass(cluster, teams, users, connection, args.jobs)
    finally:
        teardown()


def accounting_pass(cluster, teams, users, connection, closed: int) -> None:
    """An accounting pass beside the closed rows: 100 running jobs of 2 tasks, each with a minute of
    new 5-second samples since the last pass (what the clock asks every minute)."""
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from jobs import spec as job_spec
    from jobs.models import Job, Task
    from monitoring import accounting
    from monitoring.models import UsageSample

    spec = job_spec.validate(
        {
            "name": "live", "framework": "batch", "image": "python:3.12", "command": "true",
            "roles": {"worker": {"replicas": 2, "cpu": "2", "memory": "4Gi", "gpu": 1}},
        }
    )  # fmt: skip
    now = timezone.now()
    started = now - timedelta(minutes=10)
    jobs = Job.objects.bulk_create(
        Job(
            public_id=f"j-run{i:05d}", name=f"live-{i}", team=teams[i % 5], owner=users[i % 10], cluster=cluster,
            framework="batch", spec=spec, state="running", started_at=started, cpu_milli=4000, memory_bytes=8 << 30,
            gpu=2,
        )
        for i in range(100)
    )  # fmt: skip
    tasks = Task.objects.bulk_create(
        Task(job=job, role="worker", index=index, state="running", node="n", started_at=started)
        for job in jobs
        for index in range(2)
    )

    def samples(since, count: int) -> None:
        UsageSample.objects.bulk_create(
            UsageSample(
                task=task, job_id=task.job_id, at=since + timedelta(seconds=5 * (n + 1)), seconds=5, cpu_cores=1.5,
                memory_bytes=3 << 30, gpu_util=60,
            )
            for task in tasks
            for n in range(count)
        )  # fmt: skip

    samples(started, 96)  # eight minutes, counted by a first pass
    cache.clear()
    first = time.perf_counter()
    accounting.account_pass(now=now)
    first = time.perf_counter() - first
    samples(started + timedelta(minutes=8), 12)  # the minute since
    cache.clear()
    queries: list[str] = []

    def record(execute, sql, *rest):
        queries.append(sql)
        return execute(sql, *rest)

    later = now + timedelta(minutes=1)
    start = time.perf_counter()
    with connection.execute_wrapper(record):
        written = accounting.account_pass(now=later)
    elapsed = time.perf_counter() - start
    if os.environ.get("BENCH_PROFILE_PASS"):
        import cProfile
        import pstats

        samples(started + timedelta(minutes=9), 12)
        cache.clear()
        profiler = cProfile.Profile()
        profiler.runcall(accounting.account_pass, now=later + timedelta(minutes=1))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
    print(
        f"accounting pass (100 running jobs of 2 tasks, {closed:,} closed rows): first {first * 1000:.0f} ms; "
        f"a minute later {elapsed * 1000:.0f} ms, {len(queries)} queries, {written} rows written"
    )


if __name__ == "__main__":
    main()
