"""Quota arithmetic in one place: what a team holds on a cluster, and the answers built on it."""

import pytest

from clusters.backends.base import ObservedState
from clusters.models import Quota
from jobs import quota, selectors, tasks
from jobs.models import Job
from jobs.state import HOLDS_RESOURCES, JobState

pytestmark = pytest.mark.django_db


def test_the_states_that_hold_resources_are_the_submitted_unfinished_ones():
    assert {JobState.UNKNOWN, JobState.PENDING, JobState.RUNNING} == HOLDS_RESOURCES


def test_an_unknown_job_counts_in_the_teams_usage_everywhere(owner, team, fake_backend, submit):
    # An unknown job was handed to the backend, which may have placed it: the submit worker's quota check
    # counted it and the "why is my job waiting" line did not. Both now count it.
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=8000, memory_bytes=2**40, gpu=0)
    job = submit(owner)  # 2 CPU, 3 GiB: pending on the fake backend
    Job.objects.filter(pk=job.pk).update(state=JobState.UNKNOWN)
    assert quota.team_usage(team_id=team.pk, cluster_id=fake_backend.cluster.pk) == quota.Usage(2000, 3 * 2**30, 0)
    job.refresh_from_db()
    assert "team quota used: 2 of 8 CPU, 3Gi of 1Ti memory, 0 of 0 GPU" in selectors.why_waiting(job)


def test_a_queued_or_finished_job_holds_nothing(owner, team, fake_backend, submit):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=8000, memory_bytes=2**40, gpu=0)
    job = submit(owner)
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED)
    assert quota.team_usage(team_id=team.pk, cluster_id=fake_backend.cluster.pk) == quota.Usage()
    Job.objects.filter(pk=job.pk).update(state=JobState.PENDING)
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED)
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert quota.team_usage(team_id=team.pk, cluster_id=fake_backend.cluster.pk) == quota.Usage()


def test_a_queued_job_waits_while_an_unknown_job_of_the_team_holds_the_quota(owner, team, fake_backend, submit):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=3000, memory_bytes=2**40, gpu=0)
    first = submit(owner)
    Job.objects.filter(pk=first.pk).update(state=JobState.UNKNOWN)
    second = submit(owner)
    second.refresh_from_db()
    assert second.state == JobState.QUEUED
    assert second.message == "team quota: needs 2 CPU, 1 of 3 CPU free"
    assert quota.wait_reason(first) == ""  # a job never waits behind itself
