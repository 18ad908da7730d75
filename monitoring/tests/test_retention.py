"""Retention: raw samples become one-minute points after a day, those hourly points after a week; the table stays
bounded, and what accounting counts (value × seconds) is the same at every resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F, Sum

from clusters.backends.base import ObservedState
from jobs import services as job_services
from jobs.models import Job
from jobs.workers.submit import job_submit_to_backend
from jobs.workers.sync import cluster_sync
from monitoring import retention
from monitoring.models import Resolution, UsageSample

MiB = 2**20
STEP = 10  # seconds between raw samples, the sampler's default
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def job(fake_backend, owner) -> Job:
    doc = {"name": "long", "framework": "batch", "command": "train", "roles": {"main": {"replicas": 2}}}
    job = job_services.job_submit(user=owner, data=doc)
    job_submit_to_backend(job.pk)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    cluster_sync(fake_backend.cluster)
    return job


def _raw(job: Job, since: datetime, until: datetime, step: int = STEP) -> None:
    """A raw sample every ``step`` seconds per task, CPU and memory following the minute of the day."""
    rows = []
    for task in job.tasks.all():
        at = since + timedelta(seconds=step)
        while at <= until:
            minute = int(at.timestamp() // 60)
            rows.append(
                UsageSample(
                    task=task,
                    job=job,
                    at=at,
                    seconds=step,
                    cpu_cores=(minute % 4) * 0.5,
                    memory_bytes=(100 + minute % 7) * MiB,
                    gpu_util=50.0 if task.index == 0 else None,
                    gpu_memory_bytes=2 * MiB if task.index == 0 else None,
                )
            )
            at += timedelta(seconds=step)
    UsageSample.objects.bulk_create(rows, batch_size=2000)


def _totals() -> dict:
    return UsageSample.objects.aggregate(
        total_seconds=Sum("seconds"),
        core_seconds=Sum(F("cpu_cores") * F("seconds")),
        byte_seconds=Sum(F("memory_bytes") * F("seconds")),
    )


def test_a_simulated_week_stays_bounded(job):
    """Sampled every 30 s for 9 days, retention run every hour as the clock would: the rows stay bounded."""
    tasks, step = job.tasks.count(), 30
    per_hour = 3600 // step
    largest = 0
    now = START
    for _hour in range(9 * 24):
        _raw(job, now, now + timedelta(hours=1), step)
        now += timedelta(hours=1)
        retention.downsample(now)
        largest = max(largest, UsageSample.objects.count())
    per_task = {
        r: UsageSample.objects.filter(resolution=r).count() / tasks
        for r in (Resolution.RAW, Resolution.MINUTE, Resolution.HOUR)
    }
    # A day of raw samples (plus the hour not yet folded), six more days of minutes, the two days before in hours.
    assert 24 * per_hour <= per_task[Resolution.RAW] <= 25 * per_hour
    assert 6 * 1440 <= per_task[Resolution.MINUTE] <= 7 * 1440
    assert per_task[Resolution.HOUR] == pytest.approx(2 * 24, abs=2)
    assert largest <= tasks * (25 * per_hour + 7 * 1440 + 3 * 24)
    # Unbounded it would have been 9 days of raw samples.
    assert largest < tasks * 9 * 24 * per_hour / 2


def test_downsampling_keeps_what_accounting_counts(job):
    _raw(job, START, START + timedelta(days=2))
    before = _totals()
    made = retention.downsample(START + timedelta(days=9))
    assert made["minute_points"] == 2 * 2 * 1440 and made["hour_points"] == 2 * 48
    after = _totals()
    assert not UsageSample.objects.exclude(resolution=Resolution.HOUR).exists()
    assert after["total_seconds"] == pytest.approx(before["total_seconds"])
    assert after["core_seconds"] == pytest.approx(before["core_seconds"])
    assert after["byte_seconds"] == pytest.approx(before["byte_seconds"], rel=1e-6)
    point = UsageSample.objects.filter(task__index=0).order_by("at").first()
    assert point.at == START + timedelta(hours=1) and point.seconds == 3600
    assert point.cpu_cores == pytest.approx(0.75)  # minutes 0..59: 0, 0.5, 1, 1.5 in turn
    assert point.gpu_util == 50.0 and point.gpu_memory_bytes == 2 * MiB
    other = UsageSample.objects.filter(task__index=1).order_by("at").first()
    assert other.gpu_util is None and other.gpu_memory_bytes is None


def test_a_minute_is_folded_only_once_it_is_whole_and_older_than_a_day(job):
    now = START + timedelta(days=1, seconds=35)
    _raw(job, START - timedelta(minutes=2), now)
    retention.downsample(now)
    minutes = UsageSample.objects.filter(resolution=Resolution.MINUTE)
    # The two minutes that ended at or before START + 0:00:00 (a day before, floored to the minute) are folded.
    assert sorted({p.at for p in minutes}) == [START - timedelta(minutes=1), START]
    assert all(p.seconds == 60 for p in minutes)
    assert not UsageSample.objects.filter(resolution=Resolution.RAW, at__lte=START).exists()
    assert UsageSample.objects.filter(resolution=Resolution.RAW, at=START + timedelta(seconds=10)).exists()
    again = retention.downsample(now)  # run twice: nothing counted twice
    assert again["minute_points"] == 0 and minutes.count() == 4


def test_hourly_points_past_their_keeping_are_dropped(job, settings):
    settings.EASYAI_USAGE_HOURLY_DAYS = 30
    _raw(job, START, START + timedelta(hours=1))
    retention.downsample(START + timedelta(days=10))
    assert UsageSample.objects.filter(resolution=Resolution.HOUR).count() == 2
    assert retention.downsample(START + timedelta(days=31))["dropped"] == 2
    assert not UsageSample.objects.exists()
