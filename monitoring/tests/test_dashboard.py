"""The home page as a dashboard: the current team's running and waiting jobs, today's usage against its quota,
each cluster's capacity and what is free, recent failures, the user's notebooks, services and apps; the team
page one click away; a fixed number of queries however much there is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.models import App
from clusters.backends import use_backend
from clusters.backends.base import BackendError, Capacity
from clusters.models import Cluster, Quota
from jobs import services
from jobs.models import Job
from monitoring.models import JobUsage, UsageSample
from notebooks import services as notebook_services
from serving.models import InferenceService, RegisteredModel

GIB = 2**30
SPEC = {
    "name": "resnet",
    "framework": "pytorch",
    "image": "pytorch/pytorch:2.3",
    "command": "python train.py",
    "roles": {"master": {"replicas": 1, "cpu": "2", "memory": "4Gi", "gpu": 1}},
}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def job_in(user, state: str, *, name: str = "resnet", **fields) -> Job:
    job = services.job_submit(user=user, data={**SPEC, "name": name})
    now = timezone.now()
    if state == "running":
        fields.setdefault("started_at", now - timedelta(minutes=30))
    if state in ("failed", "success"):
        fields.setdefault("started_at", now - timedelta(hours=1))
        fields.setdefault("finished_at", now - timedelta(minutes=5))
    Job.objects.filter(pk=job.pk).update(state=state, **fields)
    return Job.objects.get(pk=job.pk)


def section(page: str, element_id: str) -> str:
    """The page from the element to the next panel of the dashboard."""
    start = page.index(f'id="{element_id}"')
    end = page.find('<div id="dashboard-', start)
    return page[start : end if end != -1 else len(page)]


@pytest.fixture(autouse=True)
def _no_cached_capacity():
    cache.clear()


@pytest.fixture
def cluster(fake_backend):
    fake_backend._capacity = Capacity(64000, 256 * GIB, 8, 40000, 200 * GIB, 6)
    return fake_backend.cluster


def test_the_home_page_shows_the_teams_running_and_waiting_jobs_and_recent_failures(people, cluster):
    owner, mate = people["owner"], people["mate"]
    running = job_in(owner, "running", name="train-big")
    waiting = job_in(mate, "pending", name="train-small")
    failed = job_in(owner, "failed", name="broken", reason="oom", message="Killed: out of memory")
    done = job_in(owner, "success", name="finished")
    old_failure = job_in(owner, "failed", name="ancient", finished_at=timezone.now() - timedelta(days=30))
    page = client_for(mate).get("/").content.decode()
    jobs = section(page, "dashboard-jobs")
    assert f'id="dashboard-job-{running.public_id}"' in jobs and f'id="dashboard-job-{waiting.public_id}"' in jobs
    assert "train-big" in jobs and "2 CPU" in jobs
    assert done.public_id not in jobs and failed.public_id not in jobs
    assert ">1 running<" in jobs and ">1 waiting<" in jobs
    failures = section(page, "dashboard-failures")
    assert f'id="dashboard-failed-{failed.public_id}"' in failures
    assert "oom" in failures and "Killed: out of memory" in failures
    assert old_failure.public_id not in page
    # The team page stays one click away.
    assert 'href="/teams/vision/"' in page


def test_an_outsider_sees_none_of_the_teams_jobs_on_their_home_page(people, cluster):
    running = job_in(people["owner"], "running")
    page = client_for(people["outsider"]).get("/").content.decode()
    assert running.public_id not in page
    assert "Nothing is running or waiting in this team." in page


def test_todays_usage_and_what_is_held_show_against_the_quota(people, cluster, team):
    owner = people["owner"]
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=8000, memory_bytes=16 * GIB, gpu=2)
    job = job_in(owner, "running")  # holds 2 CPU, 4 GiB, 1 GPU of 8, 16 GiB, 2
    JobUsage.objects.create(
        job=job, team=team, owner=owner, cluster=cluster, day=timezone.localdate(),
        core_hours_requested=4, core_hours_used=1, gib_hours_requested=8, gib_hours_used=6,
        gpu_hours_requested=2, gpu_hours_used=0.5, cost="3.50",
    )  # fmt: skip
    yesterday = job_in(owner, "success", name="yesterday")
    JobUsage.objects.create(
        job=yesterday, team=team, owner=owner, cluster=cluster, day=timezone.localdate() - timedelta(days=1),
        core_hours_requested=400, core_hours_used=100,
    )  # fmt: skip
    task = job.tasks.get()
    now = timezone.now()
    UsageSample.objects.create(task=task, job=job, at=now, seconds=3600, cpu_cores=1.5, memory_bytes=2 * GIB)
    page = client_for(people["mate"]).get("/").content.decode()
    usage = section(page, "dashboard-usage")
    today = section(usage, "dashboard-today")
    assert "1.0 / 4.0" in today and "25%" in today  # core-hours: yesterday's job not counted
    assert "6.0 / 8.0" in today and "75%" in today
    assert "3.50" in today
    quota = usage[usage.index('data-cluster="fake"') :]
    assert "CPU: 2 / 8" in quota and 'aria-valuenow="25"' in quota
    assert "GPU: 1 / 2" in quota and 'aria-valuenow="50"' in quota
    # The last day's chart: its figures come with the page (the hour of the sample: 1.5 cores, 2 GiB).
    assert 'id="dashboard-usage-data"' in page and '"cpu": [' in page
    assert "1.5" in page[page.index('id="dashboard-usage-data"') :][:2000]


def test_each_clusters_capacity_and_what_is_free_and_a_cluster_that_does_not_answer(people, cluster):
    class Down:
        def capacity(self):
            raise BackendError("connection refused")

    broken = Cluster.objects.create(name="gpu-b", kind=Cluster.Kind.KUBERNETES)
    use_backend(broken.name, Down())
    Cluster.objects.create(name="off", kind=Cluster.Kind.LOCAL, enabled=False)
    try:
        page = client_for(people["owner"]).get("/").content.decode()
    finally:
        use_backend(broken.name, None)
    clusters = section(page, "dashboard-clusters")
    fake = clusters[clusters.index('data-cluster="fake"') :]
    assert "CPU: 40 free of 64" in fake and 'aria-valuenow="38"' in fake
    assert "GPU: 6 free of 8" in fake
    gpu_b = clusters[clusters.index('data-cluster="gpu-b"') :]
    assert "Capacity unavailable" in gpu_b
    assert 'data-cluster="off"' not in clusters


def test_the_users_own_notebooks_services_and_apps_are_listed(people, cluster, team):
    owner, mate = people["owner"], people["mate"]
    notebook_services.notebook_create(user=owner, team=team, name="explore", cpu="1", memory="1Gi")
    notebook_services.notebook_create(user=mate, team=team, name="mates-notebook", cpu="1", memory="1Gi")
    model = RegisteredModel.objects.create(team=team, name="iris", owner=owner)
    InferenceService.objects.create(team=team, name="iris-svc", cluster=cluster, model=model, owner=owner)
    App.objects.create(team=team, name="iris-app", owner=owner, cluster=cluster, kind="streamlit")
    page = client_for(owner).get("/").content.decode()
    notebooks = section(page, "dashboard-notebooks")
    assert "explore" in notebooks and "mates-notebook" not in notebooks
    assert 'href="/services/vision/iris-svc/"' in section(page, "dashboard-services")
    assert 'href="/apps/vision/iris-app/"' in section(page, "dashboard-apps")
    mates = client_for(mate).get("/").content.decode()
    assert "No service yet." in section(mates, "dashboard-services")
    assert "No app yet." in section(mates, "dashboard-apps")


def test_the_dashboard_takes_the_same_queries_however_much_the_team_has(people, cluster, team):
    owner = people["owner"]
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=64000, memory_bytes=256 * GIB, gpu=8)
    client = client_for(owner)

    def add(n: int, start: int) -> None:
        model = RegisteredModel.objects.create(team=team, name=f"m{start}", owner=owner)
        for i in range(start, start + n):
            job = job_in(owner, "running", name=f"run-{i}")
            job_in(owner, "failed", name=f"fail-{i}")
            JobUsage.objects.create(job=job, team=team, owner=owner, cluster=cluster, day=timezone.localdate())
            UsageSample.objects.create(
                task=job.tasks.get(), job=job, at=timezone.now(), seconds=10, cpu_cores=1, memory_bytes=GIB
            )
            notebook_services.notebook_create(user=owner, team=team, name=f"nb-{i}", cpu="1", memory="1Gi")
            InferenceService.objects.create(team=team, name=f"svc-{i}", cluster=cluster, model=model, owner=owner)
            App.objects.create(team=team, name=f"app-{i}", owner=owner, cluster=cluster, kind="streamlit")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/").status_code == 200
        return len(queries)

    add(1, 0)
    count()  # the capacity and the session's reads settle
    few = count()
    add(8, 1)
    many = count()
    assert many == few, (few, many)
    assert many <= 30, many
