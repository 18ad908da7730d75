"""The sampler: a pass per cluster turns a backend's readings into usage samples (cores from CPU-second counters
or from rates), and on the local backend it measures real tasks' process trees."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from clusters.backends.base import BackendError, ObservedState
from jobs import services as job_services
from jobs.models import Job, Task
from jobs.workers.submit import job_submit_to_backend
from jobs.workers.sync import cluster_sync
from monitoring import metrics, sampler, schedule
from monitoring.models import UsageSample
from testing.wait import wait_until

MiB = 2**20


def _running(owner, fake, replicas: int = 1) -> Job:
    doc = {
        "name": "sampled",
        "framework": "batch",
        "command": "train",
        "roles": {"main": {"replicas": replicas, "cpu": "2", "memory": "1Gi"}},
    }
    job = job_services.job_submit(user=owner, data=doc)
    job_submit_to_backend(job.pk)  # what the submit worker does at commit
    fake.set_state(job.public_id, ObservedState.RUNNING, started_at=datetime.now(UTC) - timedelta(seconds=100))
    cluster_sync(fake.cluster)
    job.refresh_from_db()
    assert job.state == "running"
    return job


def test_cores_come_from_two_readings_of_a_cpu_counter(fake_backend, owner):
    job = _running(owner, fake_backend, replicas=2)
    t0 = datetime.now(UTC)
    fake_backend.set_usage(job.public_id, "main-0", cpu_seconds_total=50.0, memory_bytes=300 * MiB, at=t0)
    fake_backend.set_usage(job.public_id, "main-1", cpu_seconds_total=5.0, memory_bytes=100 * MiB, at=t0)
    first = sampler.sample_cluster(fake_backend.cluster)
    # The first reading covers the task's life so far: 50 CPU seconds over ~100 s since it started.
    assert first["samples"] == 2
    main0 = UsageSample.objects.get(task__role="main", task__index=0)
    assert main0.cpu_cores == pytest.approx(0.5, abs=0.05) and main0.seconds == pytest.approx(100, abs=5)

    fake_backend.set_usage(
        job.public_id, "main-0", cpu_seconds_total=70.0, memory_bytes=400 * MiB, at=t0 + timedelta(seconds=10)
    )
    fake_backend.set_usage(
        job.public_id, "main-1", cpu_seconds_total=2.0, memory_bytes=100 * MiB, at=t0 + timedelta(seconds=10)
    )
    assert sampler.sample_cluster(fake_backend.cluster)["samples"] == 2
    latest = {s.task.index: s for s in UsageSample.objects.filter(at=t0 + timedelta(seconds=10))}
    assert latest[0].cpu_cores == pytest.approx(2.0) and latest[0].seconds == pytest.approx(10)
    assert latest[0].memory_bytes == 400 * MiB and latest[0].job_id == job.pk
    # A counter that fell (a process ended unreaped) is a reset: what it reads now is all growth, as rate() says.
    assert latest[1].cpu_cores == pytest.approx(0.2)


def test_a_rate_backend_gives_cores_as_they_are_and_a_single_pod_maps_to_the_only_task(fake_backend, owner):
    job = _running(owner, fake_backend)
    fake_backend.set_usage(
        job.public_id, "", cpu_cores=3.5, memory_bytes=2 * 2**30, gpu_util=40.0, gpu_memory_bytes=MiB
    )
    assert sampler.sample_cluster(fake_backend.cluster)["samples"] == 1
    sample = UsageSample.objects.get()
    assert (sample.cpu_cores, sample.memory_bytes, sample.gpu_util, sample.gpu_memory_bytes) == (
        3.5,
        2 * 2**30,
        40.0,
        MiB,
    )
    assert sample.task == job.tasks.get()


def test_a_failing_backend_writes_nothing_and_is_counted(fake_backend, owner):
    job = _running(owner, fake_backend)
    fake_backend.set_usage(job.public_id, "main-0", cpu_cores=1.0, memory_bytes=1)
    fake_backend.fail_usage = BackendError("Prometheus at http://prom did not answer")
    result = sampler.sample_cluster(fake_backend.cluster)
    assert "did not answer" in result["error"] and not UsageSample.objects.exists()
    stats = cache.get(f"easyai:metrics:usage-pass:{fake_backend.cluster.pk}")
    assert stats["failures"] == 1 and stats["count"] == 1


def test_a_pass_is_one_backend_call_and_a_few_queries_for_many_tasks(
    fake_backend, owner, django_assert_max_num_queries
):
    jobs = [_running(owner, fake_backend, replicas=5) for _ in range(4)]
    for job in jobs:
        for i in range(5):
            fake_backend.set_usage(job.public_id, f"main-{i}", cpu_cores=1.0, memory_bytes=MiB)
    fake_backend.calls.clear()
    with django_assert_max_num_queries(3):
        assert sampler.sample_cluster(fake_backend.cluster)["samples"] == 20
    assert [c for c in fake_backend.calls if c[0] == "usage"] == [("usage", 4)]


def test_only_clusters_with_running_tasks_get_a_sampling_pass(fake_backend, owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr(schedule, "async_task", lambda name, *args, **kw: enqueued.append((name, args)))
    schedule.enqueue_due({})
    assert ("monitoring.tasks.sample_cluster", (fake_backend.cluster.pk,)) not in enqueued
    _running(owner, fake_backend)
    enqueued.clear()
    schedule.enqueue_due({})
    assert ("monitoring.tasks.sample_cluster", (fake_backend.cluster.pk,)) in enqueued
    enqueued.clear()
    schedule.enqueue_due({})  # the last pass is still queued: not a second one
    assert ("monitoring.tasks.sample_cluster", (fake_backend.cluster.pk,)) not in enqueued


# --- the local backend, real processes --------------------------------------------------------------------

BURN = "exec /usr/bin/python3 -c 'while True: pass'"
HOLD = "exec /usr/bin/python3 -c 'import time; b = b\"x\" * (200 * 2**20); time.sleep(600)'"


def _start_local(owner, cluster, command: str, **role) -> Job:
    doc = {
        "name": "measured",
        "framework": "batch",
        "command": command,
        "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "1Gi", **role}},
    }
    job = job_services.job_submit(user=owner, data=doc)

    def running() -> bool:
        cluster_sync(cluster)
        return Task.objects.filter(job=job, state=Task.State.RUNNING).exists()

    wait_until(running, timeout=30, what="the task running", every=0.2)
    return job


def _settled(cluster, job: Job, predicate, timeout: float = 30) -> UsageSample:
    """Sample until the job's latest sample (over at least two seconds) satisfies the predicate."""
    found: list[UsageSample] = []

    def ok() -> bool:
        time.sleep(1.0)
        sampler.sample_cluster(cluster)
        latest = UsageSample.objects.filter(job=job).order_by("-at").first()
        found[:] = [latest] if latest else []
        return latest is not None and predicate(latest)

    wait_until(ok, timeout=timeout, what="a settled sample", explain=lambda: f"last sample: {found and vars(found[0])}")
    return found[0]


@pytest.mark.slow
def test_the_local_sampler_measures_a_task_that_burns_one_core(local_cluster, stop_all, owner):
    job = _start_local(owner, local_cluster, BURN)
    sampler.sample_cluster(local_cluster)  # the first reading: the rest are over the seconds between passes
    sample = _settled(local_cluster, job, lambda s: s.seconds >= 0.9 and 0.8 <= s.cpu_cores <= 1.2)
    assert sample.cpu_cores == pytest.approx(1.0, abs=0.2)
    assert sample.gpu_util is None  # no GPU here, skipped cleanly


@pytest.mark.slow
def test_the_local_sampler_measures_a_task_that_holds_200_mib(local_cluster, stop_all, owner):
    job = _start_local(owner, local_cluster, HOLD)
    sample = _settled(local_cluster, job, lambda s: s.memory_bytes >= 180 * MiB)
    assert sample.memory_bytes / MiB == pytest.approx(200, abs=20)
    assert sample.cpu_cores < 0.5  # it sleeps
    # /metrics exports the reading as cAdvisor would a pod of the same job
    readings = metrics.latest_readings([local_cluster.pk])[local_cluster.pk]["tasks"]
    (reading,) = readings.values()
    assert reading["labels"] == {"namespace": job.team.slug, "pod": f"{job.public_id}-main-0", "container": "main"}
    assert reading["cpu_total"] >= 0
