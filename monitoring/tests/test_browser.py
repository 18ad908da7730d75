"""In a real headless browser, under the portal's Content-Security-Policy: the job page's usage charts draw the
job's samples and follow it while it runs, and the home page's dashboard draws its chart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from jobs import services
from jobs.models import Job, Task
from monitoring.models import UsageSample
from testing.asgi import signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GIB = 2**30
SPEC = {
    "name": "resnet",
    "framework": "pytorch",
    "image": "pytorch/pytorch:2.3",
    "command": "python train.py",
    "roles": {
        "master": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
        "worker": {"replicas": 1, "cpu": "1", "memory": "2Gi", "gpu": 1},
    },
}


def running_job(user) -> Job:
    job = services.job_submit(user=user, data=SPEC)
    started = timezone.now() - timedelta(minutes=10)
    Job.objects.filter(pk=job.pk).update(state="running", started_at=started)
    Task.objects.filter(job=job).update(state="running", started_at=started)
    return Job.objects.get(pk=job.pk)


def sample(task: Task, at, **figures) -> None:
    values = {"cpu_cores": 0.1, "memory_bytes": GIB // 2, "gpu_util": None, "gpu_memory_bytes": None, **figures}
    UsageSample.objects.create(task=task, job_id=task.job_id, at=at, seconds=10, **values)


def watch_for_violations(page: Page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("pageerror", lambda error: violations.append(str(error)))
    return violations


def points_in(page: Page, canvas: str, dataset: int = 0) -> int:
    return page.evaluate(
        "([id, n]) => { const chart = Chart.getChart(document.getElementById(id));"
        " return chart ? chart.data.datasets[n].data.length : -1; }",
        [canvas, dataset],
    )


def test_the_job_pages_charts_draw_its_samples_and_follow_it_while_it_runs(
    page: Page, asgi_server, people, fake_backend
):
    job = running_job(people["owner"])
    master, worker = job.tasks.get(role="master"), job.tasks.get(role="worker")
    start = job.started_at
    for i in range(1, 4):
        sample(master, start + timedelta(seconds=10 * i), cpu_cores=0.1)
        sample(worker, start + timedelta(seconds=10 * i), cpu_cores=0.9, gpu_util=80.0, gpu_memory_bytes=GIB)
    violations = watch_for_violations(page)
    signed_in(page, asgi_server, people["mate"])
    page.goto(f"{asgi_server.http_url}/jobs/{job.public_id}/")
    expect(page.locator("#job-usage[data-loaded='1']")).to_have_count(1, timeout=15_000)
    # Each task's series, and its request as a second, dashed line.
    assert points_in(page, "usage-cpu", 0) == 3
    assert points_in(page, "usage-memory", 0) == 3
    expect(page.locator(".usage-gpu").first).to_be_visible()
    assert points_in(page, "usage-gpu", 0) == 0  # the master has no GPU: an empty series
    assert points_in(page, "usage-gpu", 1) == 3  # the worker's
    drawn = page.evaluate(
        "() => { const c = document.getElementById('usage-cpu'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 3; i < d.length; i += 4) { if (d[i]) n++; } return n; }"
    )
    assert drawn > 100, drawn  # pixels painted on the canvas, not an empty box
    # CPU: (0.1 + 0.9) of 2 cores = 50 %; memory 1 of 3 GiB = 33 %; GPU 80 %: none under 30 %.
    expect(page.locator("#job-efficiency .efficiency[data-resource='cpu'] .badge")).to_have_text("50%")
    expect(page.locator("#job-efficiency .efficiency-low")).to_have_count(0)
    # Live: a new sample shows up at the next poll, without a reload.
    sample(master, start + timedelta(seconds=40), cpu_cores=0.2)
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('usage-cpu')).data.datasets[0].data.length === 4",
        timeout=20_000,
    )
    assert violations == []


def test_a_low_efficiency_is_flagged_on_the_page(page: Page, asgi_server, people, fake_backend):
    job = running_job(people["owner"])
    for task in job.tasks.all():
        for i in range(1, 4):
            sample(task, job.started_at + timedelta(seconds=10 * i), cpu_cores=0.05)
    violations = watch_for_violations(page)
    signed_in(page, asgi_server, people["owner"])
    page.goto(f"{asgi_server.http_url}/jobs/{job.public_id}/")
    expect(page.locator("#job-efficiency .efficiency[data-resource='cpu'] .efficiency-low")).to_have_text(
        "5% · low", timeout=15_000
    )
    assert violations == []


def test_the_dashboard_draws_the_teams_last_day(page: Page, asgi_server, people, fake_backend):
    job = running_job(people["owner"])
    sample(job.tasks.get(role="master"), timezone.now() - timedelta(minutes=1), cpu_cores=1.5)
    violations = watch_for_violations(page)
    signed_in(page, asgi_server, people["mate"])
    response = page.goto(f"{asgi_server.http_url}/")
    assert response.status == 200
    expect(page.locator("#dashboard-usage-chart[data-drawn='1']")).to_have_count(1, timeout=15_000)
    cores = page.evaluate(
        "() => Chart.getChart(document.getElementById('dashboard-usage-chart')).data.datasets[0].data"
    )
    assert len(cores) == 24 and max(cores) > 0
    expect(page.locator(f"#dashboard-job-{job.public_id}")).to_be_visible()
    expect(page.locator("#dashboard-clusters")).to_contain_text("free of")
    page.wait_for_load_state("networkidle")
    assert violations == []
