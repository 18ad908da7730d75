"""The job page's usage: the JSON its charts poll (who may read it, the resolution for the job's age, the bound
on points), the efficiency shown and flagged, and the Usage panel on the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.models import Job, Task
from monitoring import series
from monitoring.models import JobUsage, Resolution, UsageSample

GIB = 2**30
SPEC = {
    "name": "resnet",
    "framework": "pytorch",
    "image": "pytorch/pytorch:2.3",
    "command": "python train.py",
    "roles": {
        "master": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
        "worker": {"replicas": 2, "cpu": "500m", "memory": "2Gi", "gpu": 1},
    },
}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def running_job(user, *, started_ago: timedelta = timedelta(hours=1), **changes) -> Job:
    """The user's job, running since started_ago (its tasks too)."""
    job = services.job_submit(user=user, data={**SPEC, **changes})
    started = timezone.now() - started_ago
    Job.objects.filter(pk=job.pk).update(state="running", started_at=started)
    Task.objects.filter(job=job).update(state="running", started_at=started)
    return Job.objects.get(pk=job.pk)


def task_named(job: Job, name: str) -> Task:
    role, index = name.rsplit("-", 1)
    return job.tasks.get(role=role, index=int(index))


def inject(task: Task, *, start, count: int, every: float, resolution=Resolution.RAW, **values) -> None:
    """count samples of the task, every `every` seconds from start, with the figures given (callables take i)."""
    defaults = {"cpu_cores": 0.5, "memory_bytes": GIB // 2, "gpu_util": None, "gpu_memory_bytes": None}
    rows = []
    for i in range(count):
        figures = {key: value(i) if callable(value) else value for key, value in {**defaults, **values}.items()}
        rows.append(
            UsageSample(
                task=task,
                job_id=task.job_id,
                at=start + timedelta(seconds=every * (i + 1)),
                seconds=every,
                resolution=resolution,
                **figures,
            )
        )
    UsageSample.objects.bulk_create(rows)


@pytest.fixture
def job(owner, fake_backend):
    return running_job(owner)


def usage_of(user, job: Job):
    return client_for(user).get(f"/jobs/{job.public_id}/usage.json")


# --- who may read it -----------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("mate", 200), ("team_admin", 200), ("outsider", 404)])
def test_whoever_may_see_the_job_reads_its_usage_and_an_outsider_gets_404(people, job, who, status):
    inject(task_named(job, "master-0"), start=job.started_at, count=3, every=10)
    response = usage_of(people[who], job)
    assert response.status_code == status
    if status == 200:
        assert response.json()["tasks"][0]["cpu"] == [0.5, 0.5, 0.5]


def test_the_usage_of_a_job_nobody_may_see_is_404_and_a_stranger_is_sent_to_sign_in(job, outsider):
    assert usage_of(outsider, job).status_code == 404
    assert client_for(outsider).get("/jobs/j-nothere0/usage.json").status_code == 404
    response = Client().get(f"/jobs/{job.public_id}/usage.json")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


# --- what it serves -----------------------------------------------------------------------------


def test_a_young_job_gets_every_sample_with_each_tasks_request(owner, job):
    master, worker = task_named(job, "master-0"), task_named(job, "worker-1")
    inject(master, start=job.started_at, count=3, every=10, cpu_cores=lambda i: 0.25 * (i + 1))
    inject(worker, start=job.started_at, count=2, every=10, gpu_util=40.0, gpu_memory_bytes=GIB)
    data = usage_of(owner, job).json()
    assert data["resolution"] == {"name": "raw", "seconds": 0}
    assert data["active"] is True and data["poll_seconds"] > 0
    assert data["has_gpu"] is True
    by_name = {task["name"]: task for task in data["tasks"]}
    assert list(by_name) == ["master-0", "worker-0", "worker-1"]
    assert by_name["master-0"]["request"] == {"cpu": 1.0, "memory_bytes": GIB, "gpu": 0}
    assert by_name["worker-1"]["request"] == {"cpu": 0.5, "memory_bytes": 2 * GIB, "gpu": 1}
    assert by_name["master-0"]["cpu"] == [0.25, 0.5, 0.75]
    start_ms = job.started_at.timestamp() * 1000
    assert [round(t - start_ms) for t in by_name["master-0"]["t"]] == [10_000, 20_000, 30_000]
    assert by_name["master-0"]["gpu_util"] == [None, None, None]
    assert by_name["worker-1"]["gpu_util"] == [40.0, 40.0]
    assert by_name["worker-1"]["gpu_memory"] == [GIB, GIB]
    assert by_name["worker-0"]["t"] == []


def test_a_job_of_hours_gets_minute_points_each_a_weighted_mean_and_a_peak(owner, fake_backend):
    job = running_job(owner, started_ago=timedelta(hours=10))
    master = task_named(job, "master-0")
    start = job.started_at.replace(second=0, microsecond=0)
    # 1,800 raw samples, one every 20 s: past the bound, so grouped by minute (600 minutes fit in 1,000 points).
    inject(
        master, start=start, count=1800, every=20,
        cpu_cores=lambda i: 1.0 if i % 3 == 2 else 0.25,  # within each minute: 0.25, 0.25, 1.0 → mean 0.5
        memory_bytes=lambda i: GIB if i % 3 == 1 else GIB // 4,  # peak 1 GiB each minute
    )  # fmt: skip
    data = usage_of(owner, job).json()
    assert data["resolution"] == {"name": "minute", "seconds": 60}
    points = data["tasks"][0]
    # A sample belongs to the minute its interval ends in (the one ending on the minute too), as retention's
    # minute points do: each point holds three samples and is stamped with the last one's end.
    assert len(points["t"]) == 600
    assert points["t"][0] == round((start + timedelta(seconds=60)).timestamp() * 1000)
    assert all(value == pytest.approx(0.5) for value in points["cpu"])
    assert all(value == GIB for value in points["memory"])
    assert points["t"] == sorted(points["t"])


def test_a_job_of_weeks_gets_hour_points_and_a_job_of_years_day_points_never_past_the_bound(owner, fake_backend):
    weeks = running_job(owner, started_ago=timedelta(days=20))
    # Minute points downsampled from its raw samples: 1,440 of them, one every 20 minutes over 20 days.
    inject(task_named(weeks, "master-0"), start=weeks.started_at, count=1440, every=1200, resolution=Resolution.MINUTE)
    data = usage_of(owner, weeks).json()
    assert data["resolution"] == {"name": "hour", "seconds": 3600}
    assert 470 <= len(data["tasks"][0]["t"]) <= 481
    assert series.grouping_for(3 * 365 * 86400, 5000)[0] == "day"
    assert series.grouping_for(3600, 1000)[0] == "raw"
    assert series.grouping_for(20 * 3600, 1001)[0] == "hour"


def test_a_series_is_cut_to_its_last_points_past_the_bound(owner, fake_backend):
    job = running_job(owner, started_ago=timedelta(days=1500))
    inject(task_named(job, "master-0"), start=job.started_at, count=1450, every=86400, resolution=Resolution.HOUR)
    data = usage_of(owner, job).json()
    assert data["resolution"]["name"] == "day"
    points = data["tasks"][0]["t"]
    assert len(points) == series.MAX_POINTS
    assert points[-1] == pytest.approx((job.started_at + timedelta(days=1450)).timestamp() * 1000, abs=1)


def test_a_poll_gets_only_the_raw_samples_after_the_newest_it_has(owner, job):
    master = task_named(job, "master-0")
    inject(master, start=job.started_at, count=5, every=10, cpu_cores=lambda i: float(i))
    client = client_for(owner)
    whole = client.get(f"/jobs/{job.public_id}/usage.json").json()
    assert whole["incremental"] is False and whole["poll_seconds"] == 5
    third = whole["tasks"][0]["t"][2]
    data = client.get(f"/jobs/{job.public_id}/usage.json?after={third}").json()
    assert data["incremental"] is True
    assert data["tasks"][0]["cpu"] == [3.0, 4.0]
    assert data["tasks"][0]["t"] == whole["tasks"][0]["t"][3:]
    response = client.get(f"/jobs/{job.public_id}/usage.json?after=yesterday")
    assert response.status_code == 400 and "after" in response.json()


def test_grouped_series_come_whole_and_are_polled_less_often(owner, fake_backend):
    job = running_job(owner, started_ago=timedelta(hours=10))
    inject(task_named(job, "master-0"), start=job.started_at, count=1200, every=20)
    client = client_for(owner)
    after = round(timezone.now().timestamp() * 1000) - 60_000
    data = client.get(f"/jobs/{job.public_id}/usage.json?after={after}").json()
    assert data["resolution"]["name"] == "minute"
    assert data["incremental"] is False and 400 <= len(data["tasks"][0]["t"]) <= 401
    assert data["poll_seconds"] == 30


def test_an_ended_job_keeps_its_charts_and_stops_polling(owner, job):
    inject(task_named(job, "master-0"), start=job.started_at, count=3, every=10)
    Job.objects.filter(pk=job.pk).update(state="success", finished_at=timezone.now())
    data = usage_of(owner, job).json()
    assert data["active"] is False and data["poll_seconds"] == 0
    assert len(data["tasks"][0]["t"]) == 3


def test_the_usage_answer_takes_the_same_queries_for_many_tasks_as_for_few(owner, fake_backend):
    small = running_job(owner)
    big = running_job(owner, roles={**SPEC["roles"], "worker": {"replicas": 30, "cpu": "1", "memory": "1Gi"}})
    for job in (small, big):
        for task in job.tasks.all():
            inject(task, start=job.started_at, count=5, every=10)
    client = client_for(owner)
    counts = []
    for job in (small, big):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/jobs/{job.public_id}/usage.json").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 10, counts


# --- efficiency -----------------------------------------------------------------------------


def test_efficiency_is_worked_from_the_samples_and_flagged_when_low(owner, job, settings):
    settings.EASYAI_LOW_EFFICIENCY = 0.3
    master, worker0, worker1 = (task_named(job, name) for name in ("master-0", "worker-0", "worker-1"))
    # CPU: master uses 0.2 of 1 core, the workers 0.1 of 0.5 each → (0.2 + 0.1 + 0.1) / 2 = 0.2: low.
    inject(master, start=job.started_at, count=6, every=10, cpu_cores=0.2, memory_bytes=GIB // 2)
    for worker in (worker0, worker1):
        inject(worker, start=job.started_at, count=6, every=10, cpu_cores=0.1, memory_bytes=GIB, gpu_util=90.0)
    efficiency = usage_of(owner, job).json()["efficiency"]
    assert efficiency["values"]["cpu"] == pytest.approx(0.2)
    # memory: (0.5 + 1 + 1) GiB of (1 + 2 + 2) GiB = 0.5; GPUs: 90 % busy.
    assert efficiency["values"]["memory"] == pytest.approx(0.5)
    assert efficiency["values"]["gpu"] == pytest.approx(0.9)
    assert efficiency["low"] == ["cpu"]
    assert efficiency["sources"] == {"cpu": "samples", "memory": "samples", "gpu": "samples"}


def test_the_jobs_accounting_is_read_when_it_has_an_efficiency(owner, job, settings):
    settings.EASYAI_LOW_EFFICIENCY = 0.3
    inject(task_named(job, "master-0"), start=job.started_at, count=6, every=10, cpu_cores=0.9)
    JobUsage.objects.create(
        job=job, team=job.team, owner=job.owner, cluster=job.cluster, day=job.started_at.date(),
        cpu_efficiency=0.1, memory_efficiency=None, gpu_efficiency=0.05,
    )  # fmt: skip
    efficiency = usage_of(owner, job).json()["efficiency"]
    assert efficiency["values"]["cpu"] == pytest.approx(0.1)
    assert efficiency["sources"]["cpu"] == "accounting"
    assert efficiency["sources"]["memory"] == "samples"
    assert efficiency["low"] == ["cpu", "gpu"]


# --- the panel on the job page ---------------------------------------------------------------


def test_the_job_page_shows_the_usage_panel_with_its_efficiency_to_a_team_mate(mate, job, settings):
    settings.EASYAI_LOW_EFFICIENCY = 0.3
    inject(task_named(job, "master-0"), start=job.started_at, count=6, every=10, cpu_cores=0.1, memory_bytes=GIB)
    page = client_for(mate).get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="job-usage"' in page
    assert f'data-url="/jobs/{job.public_id}/usage.json"' in page
    for canvas in ("usage-cpu", "usage-memory", "usage-gpu", "usage-gpu-memory"):
        assert f'id="{canvas}"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "easyai/job_usage.js" in page
    cpu = page[page.index('data-resource="cpu"') :]
    assert "10% · low" in cpu[: cpu.index("</span></span>")]
    memory = page[page.index('data-resource="memory"') :]
    assert "100%" in memory[: memory.index("</span></span>")] and "low" not in memory[: memory.index("</span></span>")]


def test_a_job_that_never_started_has_no_usage_panel(owner, fake_backend):
    job = services.job_submit(user=owner, data=SPEC)
    page = client_for(owner).get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="job-usage"' not in page
