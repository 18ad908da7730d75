"""GET /api/v1/usage/ (JSON and CSV) and /api/v1/usage/top/: who sees what, the groupings, bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Cluster
from jobs import spec as job_spec
from jobs.models import Job, Task
from monitoring.models import JobUsage, UsageSample

DAY1, DAY2, DAY3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 12, 1)
RANGE = "from=2026-11-01&to=2026-12-31"


@pytest.fixture
def cluster(db) -> Cluster:
    return Cluster.objects.create(name="gpus", kind="local")


@pytest.fixture
def add_usage(cluster):
    """add_usage(user, team, day, cost, core=(requested, used), gpu=(requested, used)) -> the job."""

    def add(user, team, day: date, cost: str, *, core=(2.0, 1.0), gpu=(0.0, 0.0), name="train") -> Job:
        job = Job.objects.create(
            name=name, team=team, owner=user, cluster=cluster, framework="batch", spec={}, state="success"
        )
        JobUsage.objects.create(
            job=job, team=team, owner=user, cluster=cluster, day=day, running_seconds=3600,
            core_hours_requested=core[0], core_hours_used=core[1], gib_hours_requested=4, gib_hours_used=2,
            gpu_hours_requested=gpu[0], gpu_hours_used=gpu[1], cost=Decimal(cost), currency="EUR", closed=True,
        )  # fmt: skip
        return job

    return add


@pytest.fixture
def usage(add_usage, owner, mate, outsider, team, other_team) -> dict[str, Job]:
    """Vision: the owner's two jobs (Nov 2, Dec 1) and the mate's (Nov 3, with GPUs); Speech: the outsider's."""
    return {
        "owner_nov": add_usage(owner, team, DAY1, "1.50"),
        "owner_dec": add_usage(owner, team, DAY3, "0.25", name="eval"),
        "mate_nov": add_usage(mate, team, DAY2, "10.00", gpu=(4.0, 1.0), name="big"),
        "speech": add_usage(outsider, other_team, DAY1, "99.00"),
    }


@pytest.mark.parametrize("who", ["owner", "mate", "team_admin"])
def test_team_members_see_their_teams_usage_by_user(api, people, usage, who):
    response = api(people[who]).get(f"/api/v1/usage/?team=vision&{RANGE}&group_by=user")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["team"], body["from"], body["to"], body["group_by"], body["currency"]) == (
        "vision", "2026-11-01", "2026-12-31", "user", "EUR",
    )  # fmt: skip
    assert [(row["user"], row["jobs"], row["cost"]) for row in body["rows"]] == [("mate", 1, 10.0), ("owner", 2, 1.75)]
    totals = body["totals"]
    assert (totals["jobs"], totals["cost"], totals["core_hours_requested"], totals["core_hours_used"]) == (
        3,
        11.75,
        6,
        3,
    )
    assert totals["cpu_efficiency"] == 0.5 and totals["gpu_efficiency"] == 0.25 and totals["running_hours"] == 3


def test_an_outsider_gets_404_for_a_team_they_are_not_in_and_sees_their_own_by_default(api, outsider, usage):
    assert api(outsider).get(f"/api/v1/usage/?team=vision&{RANGE}").status_code == 404
    assert api(outsider).get(f"/api/v1/usage/?team=nope&{RANGE}").status_code == 404

    mine = api(outsider).get(f"/api/v1/usage/?{RANGE}").json()
    assert mine["team"] == "speech" and mine["totals"]["cost"] == 99.0
    # "all" is every team they may see: theirs alone.
    assert api(outsider).get(f"/api/v1/usage/?team=all&{RANGE}").json()["totals"]["jobs"] == 1


def test_a_platform_admin_sees_every_team_and_any_one(api, staff, usage):
    everything = api(staff).get(f"/api/v1/usage/?team=all&{RANGE}&group_by=job").json()
    assert everything["team"] == "all" and everything["totals"]["cost"] == 110.75
    assert [row["job"] for row in everything["rows"]] == [
        usage[key].public_id for key in ("speech", "mate_nov", "owner_nov", "owner_dec")
    ]
    vision = api(staff).get(f"/api/v1/usage/?team=vision&{RANGE}").json()
    assert vision["totals"]["cost"] == 11.75
    # A platform admin in no team sees every team by default.
    assert api(staff).get(f"/api/v1/usage/?{RANGE}").json()["team"] == "all"


def test_anonymous_callers_are_refused(api, usage):
    assert api(None).get("/api/v1/usage/").status_code in (401, 403)
    assert api(None).get("/api/v1/usage/top/").status_code in (401, 403)


def test_by_day_and_by_month_and_the_range(api, owner, usage):
    days = api(owner).get(f"/api/v1/usage/?team=vision&{RANGE}&group_by=day").json()["rows"]
    assert [(row["day"], row["cost"]) for row in days] == [
        ("2026-11-02", 1.5),
        ("2026-11-03", 10.0),
        ("2026-12-01", 0.25),
    ]

    months = api(owner).get(f"/api/v1/usage/?team=vision&{RANGE}&group_by=month").json()["rows"]
    assert [(row["month"], row["jobs"], row["cost"]) for row in months] == [("2026-11", 2, 11.5), ("2026-12", 1, 0.25)]

    november = api(owner).get("/api/v1/usage/?team=vision&from=2026-11-03&to=2026-11-30").json()
    assert november["totals"]["jobs"] == 1 and november["rows"][0]["day"] == "2026-11-03"


def test_by_job_names_each_job_most_costly_first(api, owner, usage):
    rows = api(owner).get(f"/api/v1/usage/?team=vision&{RANGE}&group_by=job").json()["rows"]

    assert [(row["job"], row["name"], row["owner"], row["team"], row["day"], row["cost"]) for row in rows] == [
        (usage["mate_nov"].public_id, "big", "mate", "vision", "2026-11-03", 10.0),
        (usage["owner_nov"].public_id, "train", "owner", "vision", "2026-11-02", 1.5),
        (usage["owner_dec"].public_id, "eval", "owner", "vision", "2026-12-01", 0.25),
    ]
    assert rows[0]["gpu_hours_requested"] == 4 and rows[0]["gpu_efficiency"] == 0.25


@pytest.mark.parametrize("how", ["format", "accept"])
def test_csv_with_format_csv_or_accept_text_csv(api, owner, usage, how):
    url = f"/api/v1/usage/?team=vision&{RANGE}&group_by=user"
    asked = {"format": {"path": url + "&format=csv"}, "accept": {"path": url, "HTTP_ACCEPT": "text/csv"}}[how]
    response = api(owner).get(**asked)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="usage-vision-2026-11-01-2026-12-31-user.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["user"], row["jobs"], row["cost"]) for row in rows] == [("mate", "1", "10.0"), ("owner", "2", "1.75")]
    assert rows[0]["gpu_efficiency"] == "0.25" and rows[1]["gpu_efficiency"] == ""


def test_csv_by_job_has_every_job(api, staff, usage):
    response = api(staff).get(f"/api/v1/usage/?team=all&{RANGE}&group_by=job&format=csv")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["job"], row["team"], row["owner"], row["cost"]) for row in rows] == [
        (usage["speech"].public_id, "speech", "outsider", "99.0"),
        (usage["mate_nov"].public_id, "vision", "mate", "10.0"),
        (usage["owner_nov"].public_id, "vision", "owner", "1.5"),
        (usage["owner_dec"].public_id, "vision", "owner", "0.25"),
    ]


@pytest.mark.parametrize(
    ("query", "param", "words"),
    [
        ("from=2026-13-01", "from", "is not a date"),
        ("to=yesterday", "to", "is not a date"),
        ("from=2026-12-01&to=2026-11-01", "from", "is after"),
        ("from=1990-01-01&to=2026-01-01", "from", "longer than"),
        ("group_by=week", "group_by", "is not one of: user, job, day, month"),
        ("group_by=week&format=csv", "group_by", "is not one of"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(api, owner, usage, query, param, words):
    response = api(owner).get(f"/api/v1/usage/?team=vision&{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == [param] and words in response.json()[param][0]


def test_the_query_count_does_not_grow_with_the_jobs(api, owner, team, add_usage, usage):
    client = api(owner)

    def queries() -> list[int]:
        counts = []
        for group in ("user", "job", "day", "month"):
            with CaptureQueriesContext(connection) as captured:
                assert client.get(f"/api/v1/usage/?team=vision&{RANGE}&group_by={group}").status_code == 200
            counts.append(len(captured))
        return counts

    queries()  # the first call also notes the token's use
    before = queries()
    for day in range(20):
        add_usage(owner, team, DAY1 + timedelta(days=day), "1.00")
    assert queries() == before
    assert max(before) <= 8


# --- /api/v1/usage/top/ ----------------------------------------------------------------------------------------


@pytest.fixture
def running(owner, team, cluster) -> Job:
    spec = job_spec.validate(
        {
            "name": "live", "framework": "batch", "image": "python:3.12", "command": "true",
            "roles": {"worker": {"replicas": 2, "cpu": "2", "memory": "4Gi", "gpu": 1}},
        }
    )  # fmt: skip
    started = timezone.now() - timedelta(minutes=10)
    job = Job.objects.create(
        name="live", team=team, owner=owner, cluster=cluster, framework="batch", spec=spec, state="running",
        started_at=started, cpu_milli=4000, memory_bytes=8 << 30, gpu=2,
    )  # fmt: skip
    for index in range(2):
        Task.objects.create(
            job=job, role="worker", index=index, state="running", node="node-a", gpu_ids=[str(index)],
            started_at=started,
        )  # fmt: skip
    return job


def test_top_lists_running_tasks_with_their_request_and_newest_sample(api, mate, running):
    first, second = running.tasks.order_by("index")
    now = timezone.now()
    for at, cpu in ((now - timedelta(seconds=20), 0.5), (now - timedelta(seconds=5), 1.75)):
        UsageSample.objects.create(
            task=first, job=running, at=at, seconds=5, cpu_cores=cpu, memory_bytes=3 << 30, gpu_util=80,
            gpu_memory_bytes=10 << 30,
        )  # fmt: skip
    # The second task's last sample is too old to be live.
    UsageSample.objects.create(
        task=second, job=running, at=now - timedelta(hours=1), seconds=5, cpu_cores=2, memory_bytes=1 << 30
    )

    body = api(mate).get("/api/v1/usage/top/?team=vision").json()

    assert body["team"] == "vision"
    tasks = body["tasks"]
    assert [task["task"] for task in tasks] == ["worker-0", "worker-1"]
    assert tasks[0] | {"started_at": None, "sampled_at": None} == {
        "job": running.public_id, "name": "live", "team": "vision", "owner": "owner", "task": "worker-0",
        "node": "node-a", "gpu_ids": ["0"], "started_at": None, "cpu_request": 2.0,
        "memory_request_bytes": 4 << 30, "gpu_request": 1, "sampled_at": None, "cpu_cores": 1.75,
        "memory_bytes": 3 << 30, "gpu_util": 80.0, "gpu_memory_bytes": 10 << 30,
    }  # fmt: skip
    assert tasks[0]["sampled_at"] is not None
    assert tasks[1]["sampled_at"] is None and tasks[1]["cpu_cores"] is None


def test_top_is_404_to_outsiders_and_empty_without_running_jobs(api, outsider, owner, running):
    assert api(outsider).get("/api/v1/usage/top/?team=vision").status_code == 404
    assert api(outsider).get("/api/v1/usage/top/").json() == {"team": "speech", "tasks": []}
    Job.objects.filter(pk=running.pk).update(state="success")
    assert api(owner).get("/api/v1/usage/top/").json()["tasks"] == []


def test_top_takes_the_same_queries_for_many_tasks(api, owner, team, cluster, running):
    client = api(owner)
    client.get("/api/v1/usage/top/?team=vision")  # the first call also notes the token's use
    with CaptureQueriesContext(connection) as one:
        client.get("/api/v1/usage/top/?team=vision")
    for index in range(2, 12):
        Task.objects.create(job=running, role="worker", index=index, state="running", started_at=timezone.now())
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/v1/usage/top/?team=vision").json()["tasks"]) == 12
    assert len(many) == len(one)


@pytest.mark.parametrize(
    "query", ["to=9999-12-31", "to=0001-01-05", "to=0001-01-05&group_by=month", "from=0001-01-01&to=0001-01-01"]
)
def test_the_calendars_ends_are_answered_not_a_server_error(api, owner, usage, query):
    response = api(owner).get(f"/api/v1/usage/?{query}")

    assert response.status_code == 200, response.content
    assert response.json()["totals"]["jobs"] == 0


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_stays_text(api, make_user, team, add_usage):
    from teams.models import Membership

    sly = make_user("-2+3")  # Django lets a username start with - + or @
    Membership.objects.create(team=team, user=sly, role=Membership.Role.MEMBER)
    add_usage(sly, team, DAY1, "1.00")

    response = api(sly).get(f"/api/v1/usage/?{RANGE}&group_by=user&format=csv")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["user"] for row in rows] == ["'-2+3"]
