"""The state machine, exhaustively: every state × input, as the table in ARCHITECTURE.md says."""

import threading

import pytest
from django.db import connection

from jobs.models import Job, JobEvent
from jobs.services import job_transition
from jobs.state import ACTIVE, FINAL, INITIAL, STOPPABLE, TRANSITIONS, Input, JobState, next_state, path

S = JobState
# The table of ARCHITECTURE.md, written out by hand: (from, input) -> to. Everything else is refused.
EXPECTED = {}
for source in (S.QUEUED, S.UNKNOWN):
    EXPECTED[(source, Input.START)] = S.PENDING
    EXPECTED[(source, Input.OBSERVED_PENDING)] = S.PENDING
    EXPECTED[(source, Input.REJECTED)] = S.FAILED
for source in (S.QUEUED, S.UNKNOWN, S.PENDING):
    EXPECTED[(source, Input.OBSERVED_RUNNING)] = S.RUNNING
for source in (S.PENDING, S.RUNNING):
    EXPECTED[(source, Input.OBSERVED_SUCCEEDED)] = S.SUCCESS
    EXPECTED[(source, Input.OBSERVED_FAILED)] = S.FAILED
for source in (S.UNKNOWN, S.PENDING, S.RUNNING):
    EXPECTED[(source, Input.OBSERVED_MISSING)] = S.FAILED
EXPECTED[(S.PENDING, Input.REJECTED)] = S.FAILED
for source in (S.QUEUED, S.UNKNOWN, S.PENDING, S.RUNNING):
    EXPECTED[(source, Input.STOP)] = S.STOPPED
    EXPECTED[(source, Input.TIMEOUT)] = S.STOPPED
    EXPECTED[(source, Input.OBSERVED_STOPPED)] = S.STOPPED

ALL_PAIRS = [(state, event) for state in S.values for event in Input.values]


def test_state_sets_partition_the_states():
    assert set(S.values) == ACTIVE | FINAL
    assert not ACTIVE & FINAL
    assert INITIAL < ACTIVE
    assert STOPPABLE == ACTIVE


def test_every_input_has_a_transition():
    assert set(TRANSITIONS) == set(Input.values)


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS)
def test_next_state_matches_the_table(state, event):
    assert next_state(state, event) == EXPECTED.get((state, event))


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_accept_no_input(state):
    assert all(next_state(state, event) is None for event in Input.values)


def test_a_job_seen_finished_before_it_was_seen_pending_passes_through_pending():
    assert path(S.QUEUED, Input.OBSERVED_SUCCEEDED) == [Input.OBSERVED_PENDING, Input.OBSERVED_SUCCEEDED]
    assert path(S.UNKNOWN, Input.OBSERVED_FAILED) == [Input.OBSERVED_PENDING, Input.OBSERVED_FAILED]
    assert path(S.RUNNING, Input.OBSERVED_SUCCEEDED) == [Input.OBSERVED_SUCCEEDED]
    assert path(S.SUCCESS, Input.OBSERVED_FAILED) == []


@pytest.fixture
def make_job(db, owner, team, fake_backend):
    def make(state: str = S.QUEUED) -> Job:
        return Job.objects.create(
            name="j", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}, state=state
        )

    return make


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS)
def test_job_transition_writes_the_table_and_one_event(make_job, state, event, django_capture_on_commit_callbacks):
    job = make_job(state)
    with django_capture_on_commit_callbacks():
        moved = job_transition(job, event, message="why")
    job.refresh_from_db()
    expected = EXPECTED.get((state, event))
    if expected is None:
        assert not moved
        assert job.state == state
        assert not JobEvent.objects.filter(job=job).exists()
    else:
        assert moved
        assert job.state == expected
        event_row = JobEvent.objects.get(job=job)
        assert (event_row.from_state, event_row.to_state, event_row.message) == (state, expected, "why")
        if expected in FINAL:
            assert job.finished_at is not None
        if expected == S.RUNNING:
            assert job.started_at is not None


def test_a_stale_writer_loses_and_changes_nothing(make_job):
    job = make_job(S.RUNNING)
    stale = Job.objects.get(pk=job.pk)
    assert job_transition(job, Input.OBSERVED_SUCCEEDED)
    assert not job_transition(stale, Input.STOP)
    job.refresh_from_db()
    assert job.state == S.SUCCESS
    assert JobEvent.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_writers_exactly_one_wins(owner, team, fake_backend):
    """Two threads, two database connections, the same running job: one stops it, the other's success loses."""
    job = Job.objects.create(
        name="race", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}, state=S.RUNNING
    )
    for _ in range(5):
        Job.objects.filter(pk=job.pk).update(state=S.RUNNING)
        JobEvent.objects.filter(job=job).delete()
        barrier = threading.Barrier(2)
        results = {}

        def write(name, event, barrier=barrier, results=results):
            copy = Job.objects.get(pk=job.pk)
            barrier.wait()
            try:
                results[name] = job_transition(copy, event)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=write, args=("stop", Input.STOP)),
            threading.Thread(target=write, args=("success", Input.OBSERVED_SUCCEEDED)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [False, True]
        job.refresh_from_db()
        winner = "stop" if results["stop"] else "success"
        assert job.state == (S.STOPPED if winner == "stop" else S.SUCCESS)
        assert JobEvent.objects.filter(job=job).count() == 1
