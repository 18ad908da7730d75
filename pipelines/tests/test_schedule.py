"""Schedules, with the time injected: cron in a timezone, catch-up of missed times (bounded), concurrency, pause,
backfill, and one run per time whatever delivers the tick twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pipelines import schedule as schedules
from pipelines import services
from pipelines.models import PipelineRun, RunState, Schedule
from testing.pipelines import jobs_of, save

NIGHTLY = """
name: nightly
params:
  day: {type: string, default: ""}
steps:
  - name: report
    job: {framework: batch, command: "report {{params.day}} at {{schedule.time}}", roles: {main: {}}}
"""

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def pipeline(owner):
    return save(owner, NIGHTLY).pipeline


def make(owner, pipeline, **fields) -> Schedule:
    data = {"name": "hourly", "cron": "0 * * * *", **fields}
    made = services.schedule_save(user=owner, pipeline=pipeline, data=data)
    # As if made at T0: its next time is T0's next hour.
    Schedule.objects.filter(pk=made.pk).update(last_time=T0, next_time=at(1))
    made.refresh_from_db()
    return made


def times(made: Schedule) -> list[datetime]:
    return list(
        PipelineRun.objects.filter(schedule=made).order_by("scheduled_for").values_list("scheduled_for", flat=True)
    )


def test_a_cron_schedule_makes_its_runs_at_its_times(owner, pipeline, drive):
    made = make(owner, pipeline, params={"day": "mon"})
    assert schedules.run_schedules(now=at(0.5)) == 0
    assert schedules.run_schedules(now=at(1)) == 1
    assert schedules.run_schedules(now=at(1.2)) == 0  # a second tick in the same hour makes nothing
    made.refresh_from_db()
    assert made.last_time == at(1) and made.next_time == at(2)
    [run] = PipelineRun.objects.filter(schedule=made)
    drive.tick()
    [job] = jobs_of(run, "report")
    assert job.spec["command"][-1] == f"report mon at {at(1).isoformat()}"


def test_a_timezone_moves_the_times(owner, pipeline):
    made = make(owner, pipeline, cron="0 9 * * *", timezone="Asia/Shanghai")
    assert schedules.next_after(made, T0) == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in UTC+8


def test_missed_times_are_caught_up_boundedly_or_not_at_all(owner, pipeline):
    made = make(owner, pipeline, catch_up=True, catch_up_limit=3, max_active=10)
    schedules.run_schedules(now=at(10.5))  # the portal was down for ten hours
    assert times(made) == [at(8), at(9), at(10)]  # the latest three
    made.refresh_from_db()
    assert "7 missed" in made.message and made.next_time == at(11)
    other = services.schedule_save(
        user=owner, pipeline=pipeline, data={"name": "latest-only", "cron": "0 * * * *", "catch_up": False}
    )
    Schedule.objects.filter(pk=other.pk).update(last_time=T0, next_time=at(1))
    schedules.run_schedules(now=at(10.5))
    assert times(other) == [at(10)]


def test_forbid_makes_no_run_while_one_is_active(owner, pipeline, drive):
    made = make(owner, pipeline, concurrency="forbid")
    schedules.run_schedules(now=at(1))
    drive.tick()  # the first run starts
    schedules.run_schedules(now=at(2))
    assert times(made) == [at(1)]
    made.refresh_from_db()
    assert "forbid" in made.message
    first = PipelineRun.objects.get(schedule=made)
    drive.end(jobs_of(first, "report")[0])
    drive.tick()
    schedules.run_schedules(now=at(3))
    assert times(made) == [at(1), at(3)]


def test_replace_stops_the_active_run(owner, pipeline, drive):
    made = make(owner, pipeline, concurrency="replace")
    schedules.run_schedules(now=at(1))
    drive.tick()
    schedules.run_schedules(now=at(2))
    drive.tick()
    first, second = PipelineRun.objects.filter(schedule=made).order_by("scheduled_for")
    assert first.state == RunState.STOPPED and second.state == RunState.RUNNING


def test_allow_queues_beyond_max_active(owner, pipeline, drive):
    made = make(owner, pipeline, concurrency="allow", max_active=1)
    schedules.run_schedules(now=at(1))
    schedules.run_schedules(now=at(2))
    drive.tick()
    first, second = PipelineRun.objects.filter(schedule=made).order_by("scheduled_for")
    assert (first.state, second.state) == (RunState.RUNNING, RunState.QUEUED)
    drive.end(jobs_of(first, "report")[0])
    drive.tick(2)
    second.refresh_from_db()
    assert second.state == RunState.RUNNING


def test_paused_schedules_make_nothing_and_a_twice_delivered_time_one_run(owner, pipeline):
    made = make(owner, pipeline, paused=True)
    assert schedules.run_schedules(now=at(5)) == 0
    Schedule.objects.filter(pk=made.pk).update(paused=False)
    schedules.run_schedules(now=at(1))
    Schedule.objects.filter(pk=made.pk).update(last_time=T0, next_time=at(1))  # the same tick again
    schedules.run_schedules(now=at(1))
    assert times(made) == [at(1)]


def test_backfill_over_a_date_range(owner, pipeline, mate, outsider):
    made = make(owner, pipeline, max_active=2)
    runs = services.schedule_backfill(user=mate, schedule=made, start=at(24), end=at(28))
    assert [run.scheduled_for for run in runs] == [at(24), at(25), at(26), at(27), at(28)]
    again = services.schedule_backfill(user=owner, schedule=made, start=at(27), end=at(29))
    assert [run.scheduled_for for run in again] == [at(29)]  # times that have their run are left alone
    with pytest.raises(ValidationError):
        services.schedule_backfill(user=owner, schedule=made, start=at(0), end=at(24 * 60))
    with pytest.raises(PermissionDenied):
        services.schedule_backfill(user=outsider, schedule=made, start=at(24), end=at(28))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "cron": "every day"}, "cron"),
        ({"name": "x", "cron": "0 * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"name": "x", "cron": "0 * * * *", "concurrency": "sometimes"}, "concurrency"),
        ({"name": "x", "cron": "0 * * * *", "params": {"nope": 1}}, "params.nope"),
        ({"name": "X Y", "cron": "0 * * * *"}, "name"),
        ({"name": "x", "cron": "0 * * * *", "max_active": 0}, "max_active"),
        ({"cron": "0 * * * *"}, "name"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(owner, pipeline, data, field):
    with pytest.raises(ValidationError) as caught:
        services.schedule_save(user=owner, pipeline=pipeline, data=data)
    assert field in caught.value.message_dict
    assert Schedule.objects.count() == 0


def test_a_resumed_schedule_goes_on_from_now_without_the_paused_times(owner, pipeline):
    made = make(owner, pipeline, catch_up=True, catch_up_limit=10)
    services.schedule_save(user=owner, pipeline=pipeline, data={"paused": True}, schedule=made)
    made.refresh_from_db()
    resumed = services.schedule_save(user=owner, pipeline=pipeline, data={"paused": False}, schedule=made)
    assert resumed.last_time > at(1) and resumed.next_time > resumed.last_time
    assert schedules.run_schedules(now=resumed.last_time) == 0


def test_only_its_owner_the_pipelines_owner_or_a_team_admin_deletes_a_schedule(owner, mate, team_admin, pipeline):
    made = make(owner, pipeline)
    with pytest.raises(PermissionDenied):
        services.schedule_delete(user=mate, schedule=made)
    services.schedule_delete(user=team_admin, schedule=made)
    assert not Schedule.objects.exists()
