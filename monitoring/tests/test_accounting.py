"""Each job's accounting over injected samples, against figures worked by hand.

Prices: 0.10 a core-hour, 0.02 a GiB-hour, 1.00 a GPU-hour, 3.00 a GPU-hour on an A100. Cost is
Σ interval × max(requested, used) × price, GPUs by request.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Cluster
from jobs import spec as job_spec
from jobs.models import Job, JobEvent, Task
from monitoring import accounting
from monitoring.models import JobUsage, Price, UsageSample

GIB = 1 << 30
T0 = timezone.now().replace(microsecond=0) - timedelta(days=2)
HOUR = timedelta(hours=1)


@pytest.fixture
def cluster(db) -> Cluster:
    return Cluster.objects.create(name="gpus", kind="local", settings={"gpu_models": {"node-a": "A100"}})


@pytest.fixture
def price(cluster) -> Price:
    return Price.objects.create(
        cluster=cluster, currency="EUR", core_hour=Decimal("0.10"), gib_hour=Decimal("0.02"), gpu_hour=Decimal("1"),
        gpu_hour_by_model={"A100": 3},
    )  # fmt: skip


@pytest.fixture
def make_job(owner, team, cluster):
    """make_job(roles, state, started, finished, nodes) -> a job whose tasks ran from started to finished."""

    def make(
        roles: dict, *, state: str = "success", started=T0, finished=T0 + 2 * HOUR, nodes: dict | None = None, **spec
    ) -> Job:
        normal = job_spec.validate(
            {"name": "train", "framework": "batch", "image": "python:3.12", "command": "true", "roles": roles, **spec}
        )
        cpu, memory, gpu = job_spec.totals(normal)
        job = Job.objects.create(
            name="train", team=team, owner=owner, cluster=cluster, framework="batch", spec=normal, state=state,
            cpu_milli=cpu, memory_bytes=memory, gpu=gpu, started_at=started,
            finished_at=finished if state in ("success", "failed", "stopped") else None,
        )  # fmt: skip
        for role, resources in normal["roles"].items():
            for index in range(resources["replicas"]):
                Task.objects.create(
                    job=job, role=role, index=index, state="running" if finished is None else "succeeded",
                    node=(nodes or {}).get(f"{role}-{index}", "node-x"), started_at=started, finished_at=finished,
                )  # fmt: skip
        return job

    return make


def sample(job: Job, at, *, cpu: float, gib: float, util: float | None = None, seconds: float = 3600, task=None):
    return UsageSample.objects.create(
        job=job, task=task or job.tasks.first(), at=at, seconds=seconds, cpu_cores=cpu,
        memory_bytes=int(gib * GIB), gpu_util=util,
    )  # fmt: skip


def account(job: Job, now=None) -> JobUsage:
    accounting.account_jobs([job.pk], now=now or timezone.now())
    return JobUsage.objects.get(job=job)


def test_a_job_using_more_memory_than_it_asked_pays_for_what_it_used(make_job, price):
    # 1 core and 2 GiB asked for 2 h; it used half a core and 3 GiB throughout.
    job = make_job({"worker": {"cpu": "1", "memory": "2Gi"}})
    sample(job, T0 + HOUR, cpu=0.5, gib=3)
    sample(job, T0 + 2 * HOUR, cpu=0.5, gib=3)

    usage = account(job)

    assert (usage.core_hours_requested, usage.gib_hours_requested, usage.gpu_hours_requested) == (2, 4, 0)
    assert usage.core_hours_used == pytest.approx(1) and usage.gib_hours_used == pytest.approx(6)
    # CPU: its request, 2 core-hours × 0.10; memory: what it used, 6 GiB-hours × 0.02.
    assert usage.cost == Decimal("0.320000") and usage.currency == "EUR"
    assert usage.cpu_efficiency == pytest.approx(0.5) and usage.memory_efficiency == pytest.approx(1.5)
    assert usage.gpu_efficiency is None  # no GPU asked
    assert usage.running_seconds == 7200 and usage.day == timezone.localdate(T0)
    assert (usage.team_id, usage.owner_id, usage.cluster_id) == (job.team_id, job.owner_id, job.cluster_id)


def test_a_job_using_less_than_it_asked_pays_its_request(make_job, price):
    job = make_job({"worker": {"cpu": "2", "memory": "4Gi"}})
    sample(job, T0 + HOUR, cpu=0.5, gib=1)
    sample(job, T0 + 2 * HOUR, cpu=0.5, gib=1)

    usage = account(job)

    # 4 core-hours × 0.10 + 8 GiB-hours × 0.02, whatever it used.
    assert usage.cost == Decimal("0.560000")
    assert (usage.core_hours_used, usage.gib_hours_used) == (pytest.approx(1), pytest.approx(2))
    assert usage.cpu_efficiency == pytest.approx(0.25) and usage.memory_efficiency == pytest.approx(0.25)


def test_max_is_taken_interval_by_interval_not_over_the_whole_job(make_job, price):
    # 2 cores asked: 1 core the first hour, 3 the second. On average it used what it asked, but the second
    # hour used one core more: 5 core-hours charged, not 4.
    job = make_job({"worker": {"cpu": "2", "memory": "1Gi"}})
    sample(job, T0 + HOUR, cpu=1, gib=1)
    sample(job, T0 + 2 * HOUR, cpu=3, gib=1)

    usage = account(job)

    assert usage.core_hours_used == pytest.approx(4) and usage.core_hours_over == pytest.approx(1)
    assert usage.cost == Decimal("0.540000")  # 5 × 0.10 + 2 × 0.02
    assert usage.cpu_efficiency == pytest.approx(1.0)


def test_gpus_are_charged_by_request_at_their_models_price(make_job, price):
    # Two tasks of 2 GPUs each for an hour, at 10 % utilisation: one on an A100 node (3.00), one on a node whose
    # model the portal does not know (the cluster's 1.00).
    job = make_job(
        {"worker": {"replicas": 2, "cpu": "1", "memory": "1Gi", "gpu": 2}},
        finished=T0 + HOUR,
        nodes={"worker-0": "node-a", "worker-1": "node-b"},
    )
    for task in job.tasks.all():
        sample(job, T0 + HOUR, cpu=1, gib=1, util=10, task=task)

    usage = account(job)

    assert usage.gpu_hours_requested == 4 and usage.gpu_hours_used == pytest.approx(0.4)
    assert usage.gpu_efficiency == pytest.approx(0.1)
    # GPUs: 2 × 3.00 + 2 × 1.00; CPU 2 × 0.10; memory 2 × 0.02.
    assert usage.cost == Decimal("8.240000")


def test_a_node_selector_on_the_gpu_product_label_names_the_model(make_job, price):
    job = make_job(
        {"worker": {"cpu": "1", "memory": "1Gi", "gpu": 1}},
        finished=T0 + HOUR,
        scheduling={"node_selector": {"nvidia.com/gpu.product": "A100"}},
    )

    usage = account(job)

    assert usage.cost == Decimal("3.120000")  # 1 GPU-hour on an A100, a core-hour, a GiB-hour


def test_a_job_without_samples_has_its_request_and_pays_it(make_job, price):
    job = make_job({"worker": {"replicas": 2, "cpu": "500m", "memory": "1Gi"}})

    usage = account(job)

    assert (usage.core_hours_requested, usage.gib_hours_requested) == (2, 4)
    assert (usage.core_hours_used, usage.gib_hours_used, usage.last_sample_at) == (0, 0, None)
    assert usage.cost == Decimal("0.280000")
    assert (usage.cpu_efficiency, usage.memory_efficiency) == (None, None)  # nothing sampled: not 0 %


def test_without_a_price_the_figures_are_kept_and_the_cost_is_zero(make_job):
    job = make_job({"worker": {"cpu": "1", "memory": "1Gi"}})

    usage = account(job)

    assert usage.core_hours_requested == 2 and usage.cost == 0


def test_passes_as_samples_come_in_equal_one_pass_at_the_end(make_job, price):
    job = make_job({"worker": {"cpu": "2", "memory": "2Gi", "gpu": 1}}, state="running", finished=None)
    figures = [(1.0, 1.5, 20), (2.5, 2.0, 90), (3.0, 4.0, 50), (0.5, 0.5, 0), (2.0, 3.0, 100), (1.0, 2.5, None)]
    for step, (cpu, gib, util) in enumerate(figures, start=1):
        sample(job, T0 + step * 10 * timedelta(minutes=1), cpu=cpu, gib=gib, util=util, seconds=600)
        account(job, now=T0 + step * 10 * timedelta(minutes=1) + timedelta(minutes=1))
    end = T0 + 61 * timedelta(minutes=1)
    step_by_step = account(job, now=end)

    JobUsage.objects.all().delete()
    at_once = account(job, now=end)

    fields = [
        "core_hours_requested", "core_hours_used", "gib_hours_requested", "gib_hours_used", "gpu_hours_requested",
        "gpu_hours_used", "core_hours_over", "gib_hours_over", "cpu_efficiency", "memory_efficiency", "gpu_efficiency",
    ]  # fmt: skip
    for name in fields:
        assert getattr(step_by_step, name) == pytest.approx(getattr(at_once, name)), name
    assert step_by_step.cost == at_once.cost and step_by_step.last_sample_at == at_once.last_sample_at
    # Worked by hand: 1/6 h each; over 2 cores: 0.5 + 1.0; over 2 GiB: 2.0 + 1.0 + 0.5.
    assert at_once.core_hours_used == pytest.approx(10 / 6) and at_once.core_hours_over == pytest.approx(1.5 / 6)
    assert at_once.gib_hours_over == pytest.approx(3.5 / 6)
    assert at_once.gpu_hours_used == pytest.approx((0.2 + 0.9 + 0.5 + 0 + 1.0) / 6)


def test_a_sample_younger_than_the_settling_time_waits_for_the_next_pass(make_job, price):
    job = make_job({"worker": {"cpu": "1", "memory": "1Gi"}}, state="running", finished=None)
    now = T0 + HOUR
    sample(job, now - timedelta(seconds=5), cpu=4, gib=1, seconds=5)

    assert account(job, now=now).core_hours_used == 0
    assert account(job, now=now + timedelta(minutes=1)).core_hours_used == pytest.approx(4 * 5 / 3600)


def test_a_finished_job_is_closed_once_its_last_samples_are_counted_and_then_left_alone(make_job, price):
    job = make_job({"worker": {"cpu": "1", "memory": "1Gi"}})
    end = job.finished_at
    sample(job, end, cpu=1, gib=1)

    soon = account(job, now=end + timedelta(seconds=60))
    assert not soon.closed and soon.core_hours_used == pytest.approx(1)
    closed = account(job, now=end + timedelta(seconds=accounting.CLOSE_AFTER_S + 1))
    assert closed.closed

    sample(job, end + timedelta(seconds=1), cpu=8, gib=8, seconds=1)  # late, and counted by nobody
    again = account(job, now=end + timedelta(hours=1))
    assert again.core_hours_used == closed.core_hours_used and again.updated_at == closed.updated_at


def test_the_pass_reads_the_running_and_recently_ended_jobs_not_every_finished_one(make_job, price):
    running = make_job({"worker": {"cpu": "1", "memory": "1Gi"}}, state="running", finished=None)
    old = [make_job({"worker": {"cpu": "1", "memory": "1Gi"}}) for _ in range(3)]
    accounting.account_jobs([job.pk for job in old], now=timezone.now())
    JobUsage.objects.filter(job__in=old).update(closed=True)
    now = timezone.now()
    ended_now = make_job({"worker": {"cpu": "1", "memory": "1Gi"}}, started=now - HOUR, finished=now)
    JobEvent.objects.create(job=ended_now, from_state="running", to_state="success")

    assert accounting.jobs_to_account(now - timedelta(minutes=5)) == sorted([running.pk, ended_now.pk])
    assert accounting.account_pass() == 2
    assert set(JobUsage.objects.filter(closed=False).values_list("job_id", flat=True)) == {running.pk, ended_now.pk}


def test_a_pass_takes_the_same_queries_for_ten_jobs_as_for_one(make_job, price):
    def queries(count: int) -> int:
        JobUsage.objects.all().delete()
        Job.objects.all().delete()
        jobs = [make_job({"worker": {"replicas": 2, "cpu": "1", "memory": "1Gi"}}) for _ in range(count)]
        for job in jobs:
            for task in job.tasks.all():
                sample(job, T0 + HOUR, cpu=1, gib=1, task=task)
        with CaptureQueriesContext(connection) as captured:
            accounting.account_jobs([job.pk for job in jobs], now=timezone.now())
        assert JobUsage.objects.count() == count
        return len(captured)

    assert queries(10) == queries(1)


def test_the_clock_enqueues_a_pass_at_most_once_a_minute(make_job, price):
    job = make_job({"worker": {"cpu": "1", "memory": "1Gi"}}, state="running", finished=None)
    accounting.enqueue_due({})  # django-q2 runs inline in tests
    first = JobUsage.objects.get(job=job)
    assert first.core_hours_requested > 0

    accounting.enqueue_due({})
    assert JobUsage.objects.get(job=job).updated_at == first.updated_at


def test_the_monitoring_app_offers_the_pass_to_the_clock():
    from easyai_site.management.commands.scheduler import periodic_work

    assert ("monitoring", accounting.enqueue_due) in periodic_work()


def test_account_usage_accounts_past_jobs_since_a_day_and_refuses_a_bad_date(make_job, price):
    from django.core.management import CommandError, call_command

    jobs = [make_job({"worker": {"cpu": "1", "memory": "1Gi"}}) for _ in range(2)]
    Job.objects.filter(pk=jobs[0].pk).update(created_at=T0 - timedelta(days=30))

    call_command("account_usage", "--since", (T0 - timedelta(days=1)).date().isoformat())

    assert list(JobUsage.objects.values_list("job_id", "cost")) == [(jobs[1].pk, Decimal("0.240000"))]
    with pytest.raises(CommandError, match="--since: 'yesterday' is not a date"):
        call_command("account_usage", "--since", "yesterday")


def test_a_job_through_the_sampler_is_accounted_from_its_samples(fake_backend, owner):
    """The whole path: a job submitted and run on the fake backend, sampled by the sampler (3 cores of the 2 it
    asked, 512 MiB of 1 GiB), then ended; the pass after it closes counts each sample once."""
    from datetime import UTC, datetime

    from clusters.backends.base import ObservedState
    from jobs import services as job_services
    from jobs.workers.submit import job_submit_to_backend
    from jobs.workers.sync import cluster_sync
    from monitoring import sampler

    Price.objects.create(cluster=fake_backend.cluster, core_hour=Decimal("0.10"), gib_hour=Decimal("0.02"))
    job = job_services.job_submit(
        user=owner,
        data={
            "name": "e2e",
            "framework": "batch",
            "command": "train",
            "roles": {"main": {"cpu": "2", "memory": "1Gi"}},
        },
    )
    job_submit_to_backend(job.pk)
    started = datetime.now(UTC) - timedelta(seconds=120)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, started_at=started)
    cluster_sync(fake_backend.cluster)
    for seconds in (60, 90):
        fake_backend.set_usage(
            job.public_id, "main-0", cpu_cores=3.0, memory_bytes=512 << 20, at=started + timedelta(seconds=seconds)
        )
        assert sampler.sample_cluster(fake_backend.cluster)["samples"] == 1
    finished = started + timedelta(seconds=100)
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED, exit_code=0, finished_at=finished)
    cluster_sync(fake_backend.cluster)
    job.refresh_from_db()
    assert job.state == "success"

    usage = account(job, now=timezone.now() + timedelta(seconds=accounting.CLOSE_AFTER_S + 1))

    task = job.tasks.get()
    ran_h = (task.finished_at - task.started_at).total_seconds() / 3600
    sampled_h = sum(UsageSample.objects.filter(job=job).values_list("seconds", flat=True)) / 3600
    assert usage.closed and ran_h > 0 and sampled_h > 0
    assert usage.core_hours_requested == pytest.approx(2 * ran_h)
    assert usage.core_hours_used == pytest.approx(3 * sampled_h)
    assert usage.core_hours_over == pytest.approx(1 * sampled_h)  # one core above the request
    assert usage.gib_hours_used == pytest.approx(0.5 * sampled_h) and usage.gib_hours_over == 0
    expected = (2 * ran_h + sampled_h) * 0.10 + 1 * ran_h * 0.02  # memory: its request
    assert float(usage.cost) == pytest.approx(expected, abs=1e-6)
