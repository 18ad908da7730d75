"""What sampling costs: the portal's CPU per sampling pass over 100 running local tasks, and the database bytes a
task-day of samples takes at each resolution.

    .venv/bin/python bench/monitoring_sampler.py [--tasks 100] [--passes 20] [--skip-tasks]
    DATABASE_URL=mysql://user:pass@127.0.0.1:3306/easyai .venv/bin/python bench/monitoring_sampler.py

1. Sampler cost: --tasks real tasks (``sleep``, 5 to a job) started on a local cluster through the portal's own
   path (job_submit, the submit worker, sync passes), then --passes sampling passes (monitoring.sampler,
   the code the workers run): the CPU seconds of this process per pass (psutil's walk of the host's processes
   and each task's tree, the queries, the insert), its wall time, and the backend's usage() call alone.
2. Bytes per task-day: a day of one task's samples at each resolution (raw every EASYAI_USAGE_SAMPLE_SECONDS,
   one-minute points, hourly points) inserted for 20 tasks; the table and its indexes measured (SQLite:
   the dbstat table; MySQL: information_schema after ANALYZE TABLE, InnoDB's allocated pages).

A throw-away test database (SQLite, or a test_ database on DATABASE_URL's server).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from _setup import database_label, django_up, local_team


def _start_tasks(count: int, per_job: int = 5):
    from django.contrib.auth import get_user_model

    from jobs import services
    from jobs.models import Task
    from jobs.workers.sync import cluster_sync

    user, _team, cluster = local_team()
    get_user_model().objects.filter(pk=user.pk).update(is_superuser=True, is_staff=True)  # may run unisolated
    user.refresh_from_db()
    cluster.settings = {"cpu": 64, "memory": "64Gi", "stop_grace": 1}
    cluster.save()
    jobs = []
    for i in range(count // per_job):
        doc = {
            "name": f"sleepy-{i}",
            "framework": "batch",
            "command": "sleep 3600",
            "roles": {"main": {"replicas": per_job, "cpu": "10m", "memory": "16Mi"}},
        }
        jobs.append(services.job_submit(user=user, data=doc))
    deadline = time.monotonic() + 300
    while Task.objects.filter(job__cluster=cluster, state=Task.State.RUNNING).count() < len(jobs) * per_job:
        if time.monotonic() > deadline:
            raise SystemExit("the tasks did not all start within 5 minutes")
        cluster_sync(cluster)
        time.sleep(0.5)
    return cluster, jobs


def sampler_cost(tasks: int, passes: int) -> None:
    from monitoring import sampler
    from monitoring.models import UsageSample

    began = time.monotonic()
    cluster, jobs = _start_tasks(tasks)
    print(f"{tasks} sleep tasks running on a local cluster ({len(jobs)} jobs) after {time.monotonic() - began:.0f} s")
    backend = cluster.backend()
    job_ids = [j.public_id for j in jobs]
    try:
        sampler.sample_cluster(cluster)  # the first reading of each task
        whole_cpu, whole_wall, usage_cpu = [], [], []
        for _ in range(passes):
            time.sleep(0.5)
            cpu, wall = time.process_time(), time.perf_counter()
            result = sampler.sample_cluster(cluster)
            whole_cpu.append(time.process_time() - cpu)
            whole_wall.append(time.perf_counter() - wall)
            assert result["samples"] == tasks, result
            cpu = time.process_time()
            readings = backend.usage(job_ids)
            usage_cpu.append(time.process_time() - cpu)
            assert len(readings) == tasks, len(readings)
        per_100 = 100 / tasks
        print(f"sampling pass over {tasks} running tasks ({passes} passes, median):")
        print(
            f"  portal CPU per pass:            {statistics.median(whole_cpu) * 1000 * per_100:7.1f} ms per 100 tasks"
        )
        print(
            f"  of which the backend's usage(): {statistics.median(usage_cpu) * 1000 * per_100:7.1f} ms per 100 tasks"
        )
        print(
            f"  wall time per pass:             {statistics.median(whole_wall) * 1000 * per_100:7.1f} ms per 100 tasks"
        )
        interval = 10.0
        print(
            f"  at one pass every {interval:.0f} s: {statistics.median(whole_cpu) * per_100 / interval * 100:.2f}% "
            "of one core per 100 running tasks"
        )
        print(f"  samples written: {UsageSample.objects.count()}")
    finally:
        for job_id in job_ids:
            backend.stop(job_id)


def _table_bytes() -> int:
    from django.db import connection

    from monitoring.models import UsageSample

    table = UsageSample._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE tbl_name = %s", [table])
            names = [row[0] for row in cursor.fetchall()]
            marks = ",".join(["%s"] * len(names))
            cursor.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", names)
            return int(cursor.fetchone()[0] or 0)
        if connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {table}")
            cursor.fetchall()
            cursor.execute(
                "SELECT data_length + index_length FROM information_schema.TABLES "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [table],
            )
            return int(cursor.fetchone()[0])
    raise SystemExit(f"no size reading for {connection.vendor}")


def _empty_table() -> None:
    """Emptied so that its size starts again from nothing (InnoDB keeps the pages of deleted rows)."""
    from django.db import connection

    from monitoring.models import UsageSample

    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE TABLE {UsageSample._meta.db_table}")
    else:
        UsageSample.objects.all().delete()


def bytes_per_task_day(tasks: int = 20) -> None:
    from django.conf import settings

    from clusters.models import Cluster
    from jobs.models import Job, Task
    from monitoring.models import Resolution, UsageSample

    step = settings.EASYAI_USAGE_SAMPLE_SECONDS
    cluster = Cluster.objects.first()
    if cluster is None:
        from _setup import local_team

        _user, _team, cluster = local_team()
    job = Job.objects.filter(cluster=cluster).first()
    if job is None:
        from django.contrib.auth import get_user_model

        from jobs import services

        user = get_user_model().objects.get(username="bench")
        doc = {"name": "days", "framework": "batch", "command": "true", "roles": {"main": {"cpu": "10m"}}}
        job = services.job_submit(user=user, data=doc)
    task_ids = list(Task.objects.filter(job=job).values_list("pk", flat=True))[:tasks] or []
    while len(task_ids) < tasks:
        task_ids.append(Task.objects.create(job=job, role="extra", index=len(task_ids)).pk)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    print(f"bytes per task-day ({database_label()}, {tasks} tasks, a sample every {step:g} s, table + indexes):")
    days: dict[int, float] = {}
    for resolution, seconds, kept in (
        (Resolution.RAW, step, f"{settings.EASYAI_USAGE_RAW_HOURS:g} h"),
        (Resolution.MINUTE, 60, f"{settings.EASYAI_USAGE_MINUTE_DAYS:g} days"),
        (Resolution.HOUR, 3600, f"{settings.EASYAI_USAGE_HOURLY_DAYS:g} days"),
    ):
        _empty_table()
        empty = _table_bytes()
        per_day = int(86400 // seconds)
        span = max(1, -(-100_000 // (tasks * per_day)))  # days enough for ~100,000 rows: InnoDB counts 16 KiB pages
        for day_index in range(span):
            UsageSample.objects.bulk_create(
                [
                    UsageSample(
                        task_id=task_id,
                        job_id=job.pk,
                        at=start + timedelta(days=day_index, seconds=seconds * (i + 1)),
                        seconds=seconds,
                        resolution=resolution,
                        cpu_cores=0.5 + (i % 7) / 10,
                        memory_bytes=(300 + i % 13) * 2**20,
                        gpu_util=None,
                        gpu_memory_bytes=None,
                    )
                    for task_id in task_ids
                    for i in range(per_day)
                ],
                batch_size=2000,
            )
        size = _table_bytes() - empty
        per_row = size / (tasks * per_day * span)
        day = size / (tasks * span)
        days[resolution] = day
        print(
            f"  {resolution.label:>10}: {per_day:6d} rows a day, {per_row:5.1f} bytes a row, "
            f"{day / 1024:8.1f} KiB per task-day (kept {kept})"
        )
    _empty_table()
    week = days[Resolution.RAW] + (settings.EASYAI_USAGE_MINUTE_DAYS - 1) * days[Resolution.MINUTE]
    print(
        f"  a task that runs for ever holds {week / 2**20:.1f} MiB for its last week (a day raw, the rest in minutes) "
        f"and {days[Resolution.HOUR] * 365 / 2**20:.2f} MiB a year before that (hours)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--skip-tasks", action="store_true", help="only the bytes per task-day")
    args = parser.parse_args()
    teardown = django_up()
    try:
        print(f"database: {database_label()}")
        if not args.skip_tasks:
            sampler_cost(args.tasks, args.passes)
        else:
            local_team()
        bytes_per_task_day()
    finally:
        teardown()


if __name__ == "__main__":
    main()
