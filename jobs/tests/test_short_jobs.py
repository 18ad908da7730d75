"""A job that ran and ended between two sync passes still records that it ran: when, and for how long.

The sync pass that first sees it ended moves it through every state it went through
(``pending → running → success``), the step into running dated by its tasks' earliest start.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from clusters.backends.base import ObservedState
from clusters.models import Cluster
from jobs import services, tasks
from jobs.models import Job, JobEvent
from jobs.state import Input, JobState, path

pytestmark = pytest.mark.django_db

S = JobState


def test_the_path_of_a_job_seen_ended_passes_through_running_when_its_tasks_started():
    assert path(S.PENDING, Input.OBSERVED_SUCCEEDED, ran=True) == [Input.OBSERVED_RUNNING, Input.OBSERVED_SUCCEEDED]
    assert path(S.PENDING, Input.OBSERVED_FAILED, ran=True) == [Input.OBSERVED_RUNNING, Input.OBSERVED_FAILED]
    assert path(S.PENDING, Input.OBSERVED_STOPPED, ran=True) == [Input.OBSERVED_RUNNING, Input.OBSERVED_STOPPED]
    assert path(S.UNKNOWN, Input.OBSERVED_SUCCEEDED, ran=True) == [
        Input.OBSERVED_PENDING,
        Input.OBSERVED_RUNNING,
        Input.OBSERVED_SUCCEEDED,
    ]
    # Seen running already, or never started: nothing to pass through.
    assert path(S.RUNNING, Input.OBSERVED_SUCCEEDED, ran=True) == [Input.OBSERVED_SUCCEEDED]
    assert path(S.PENDING, Input.OBSERVED_FAILED) == [Input.OBSERVED_FAILED]
    assert path(S.PENDING, Input.OBSERVED_MISSING, ran=True) == [Input.OBSERVED_MISSING]
    assert path(S.SUCCESS, Input.OBSERVED_FAILED, ran=True) == []


def test_a_job_of_one_true_task_seen_only_after_it_ended_records_when_it_ran(owner, django_capture_on_commit_callbacks):
    """The sync interval longer than the task: the backend runs and ends it before any pass looks."""
    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 2, "memory": "2Gi", "stop_grace": 1}
    )
    spec = {"name": "short", "framework": "batch", "command": "true", "roles": {"main": {"cpu": "100m"}}}
    with django_capture_on_commit_callbacks(execute=True):  # the submit worker hands it to the backend
        job = services.job_submit(user=owner, data=spec)
    job.refresh_from_db()
    assert job.state == S.PENDING
    backend = cluster.backend()
    deadline = time.monotonic() + 30
    while backend.observe([job.public_id])[job.public_id].state != ObservedState.SUCCEEDED:
        assert time.monotonic() < deadline, "the backend never ran the task to its end"
        time.sleep(0.05)

    tasks.sync_cluster(cluster.pk)  # the first pass after it started

    job.refresh_from_db()
    task = job.tasks.get()
    assert (job.state, task.state, task.exit_code) == (S.SUCCESS, "succeeded", 0)
    assert task.started_at is not None and task.finished_at is not None
    assert job.started_at == task.started_at  # its tasks' earliest start, not the time of the pass
    assert job.finished_at is not None and job.started_at <= job.finished_at <= timezone.now()
    assert job.duration is not None and timedelta(0) <= job.duration < timedelta(seconds=30)
    events = list(job.events.all())
    assert [(e.from_state, e.to_state) for e in events] == [
        (S.QUEUED, S.PENDING),
        (S.PENDING, S.RUNNING),
        (S.RUNNING, S.SUCCESS),
    ]
    assert "before a sync pass saw it run" in events[1].message


T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _submitted(owner, fake_backend, capture, created=T0 - timedelta(minutes=1)) -> Job:
    spec = {"name": "j", "framework": "batch", "command": "true", "roles": {"main": {"replicas": 2}}}
    with capture(execute=True):
        job = services.job_submit(user=owner, data=spec)
    Job.objects.filter(pk=job.pk).update(created_at=created)
    return Job.objects.get(pk=job.pk)


def _ends(fake_backend, job: Job, state: str, starts, ends, **fields) -> None:
    fake_backend.set_state(job.public_id, state, **fields)
    seen = fake_backend.states[job.public_id]
    fake_backend.states[job.public_id] = replace(
        seen,
        tasks=[replace(t, started_at=s, finished_at=e) for t, s, e in zip(seen.tasks, starts, ends, strict=True)],
    )


def test_a_failed_job_that_ran_between_passes_records_its_start_from_the_earliest_task(
    owner, fake_backend, django_capture_on_commit_callbacks
):
    job = _submitted(owner, fake_backend, django_capture_on_commit_callbacks)
    starts = [T0 + timedelta(seconds=3), T0]
    ends = [T0 + timedelta(seconds=9), T0 + timedelta(seconds=7)]
    _ends(fake_backend, job, ObservedState.FAILED, starts, ends, exit_code=3)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == S.FAILED
    assert (job.started_at, job.finished_at) == (T0, T0 + timedelta(seconds=9))
    assert job.duration == timedelta(seconds=9)
    assert [e.to_state for e in job.events.all()] == [S.PENDING, S.RUNNING, S.FAILED]


def test_a_job_that_never_started_does_not_pass_through_running(
    owner, fake_backend, django_capture_on_commit_callbacks
):
    job = _submitted(owner, fake_backend, django_capture_on_commit_callbacks)
    fake_backend.set_state(job.public_id, ObservedState.FAILED, reason="ImagePullBackOff")
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert (job.state, job.started_at, job.duration) == (S.FAILED, None, None)
    assert [e.to_state for e in job.events.all()] == [S.PENDING, S.FAILED]


def test_a_job_seen_running_starts_when_its_first_task_started(owner, fake_backend, django_capture_on_commit_callbacks):
    job = _submitted(owner, fake_backend, django_capture_on_commit_callbacks)
    _ends(
        fake_backend, job, ObservedState.RUNNING, [T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)], [None, None]
    )
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert (job.state, job.started_at) == (S.RUNNING, T0 + timedelta(seconds=1))
    assert [e.to_state for e in job.events.all()] == [S.PENDING, S.RUNNING]


def test_a_clusters_clock_never_puts_a_start_before_the_submit_or_an_end_in_the_future(
    owner, fake_backend, django_capture_on_commit_callbacks
):
    created = timezone.now() - timedelta(seconds=30)
    job = _submitted(owner, fake_backend, django_capture_on_commit_callbacks, created=created)
    early, late = created - timedelta(hours=1), timezone.now() + timedelta(hours=1)
    _ends(fake_backend, job, ObservedState.SUCCEEDED, [early, early], [late, late], exit_code=0)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == S.SUCCESS
    assert job.started_at == created
    assert created <= job.finished_at <= timezone.now()
    assert JobEvent.objects.filter(job=job, to_state=S.RUNNING).count() == 1
