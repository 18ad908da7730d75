"""A submit's cost in queries: a bound whatever the number of roles and tasks, with every check kept.

Counted through the API with a token, after a first request (the token's once-a-minute last-use write and
Django's content types are not a submit's), in a real transaction with the enqueue on django-q2's ORM
broker: the token, the team, the cluster with the team's quota, the experiment (read, and made when new),
the job, its tasks in one insert, the queue entry. The transaction's own statements (BEGIN, COMMIT) are
not queries and are left out of the count.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.conf import Conf
from django_q.models import OrmQ

from clusters.models import Quota
from jobs.models import Experiment, Job, Task

pytestmark = pytest.mark.django_db(transaction=True)

MAX_QUERIES = 8
TRANSACTION_CONTROL = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT"}


@pytest.fixture
def queued(monkeypatch):
    """The submit is enqueued on the ORM broker, as on the embedded defaults (even where the suite runs with
    Redis), not run inline."""
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")


def one_role() -> dict:
    return {"name": "small", "framework": "pytorch", "image": "img", "command": "python t.py",
            "roles": {"master": {"replicas": 1}}}  # fmt: skip


def sixty_tasks() -> dict:
    roles = {f"role{i}": {"replicas": 10, "cpu": "100m", "memory": "64Mi"} for i in range(6)}
    return {"name": "wide", "framework": "batch", "image": "img", "command": "run", "roles": roles}


def submit(client, doc: dict):
    return client.post("/api/v1/jobs/", json.dumps(doc), content_type="application/json")


@pytest.mark.parametrize(("doc", "tasks"), [(one_role, 1), (sixty_tasks, 60)], ids=["1 role", "6 roles x 10"])
def test_a_submit_takes_at_most_eight_queries(api, owner, team, fake_backend, queued, doc, tasks):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=100_000, memory_bytes=2**40, gpu=8)
    client = api(owner)
    assert submit(client, {**doc(), "name": "first"}).status_code == 201
    with CaptureQueriesContext(connection) as captured:
        response = submit(client, {**doc(), "experiment": "sweep"})
    assert response.status_code == 201, response.content
    sql = [q["sql"] for q in captured.captured_queries if q["sql"] not in TRANSACTION_CONTROL]
    assert len(sql) <= MAX_QUERIES, "\n".join(sql)
    job = Job.objects.get(public_id=response.json()["id"])
    assert Task.objects.filter(job=job).count() == tasks == len(response.json()["tasks"])
    assert OrmQ.objects.count() == 2  # each submit queued once
    assert job.experiment.name == "sweep"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"roles": {"master": {"replicas": 1, "cpu": "200"}}}, "roles"),  # past the team's quota
        ({"framework": "nope"}, "framework"),
        ({"cluster": "elsewhere"}, "cluster"),
    ],
)
def test_a_refused_submit_writes_nothing(api, owner, team, fake_backend, queued, change, field):
    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=100_000, memory_bytes=2**40, gpu=8)
    response = submit(api(owner), {**one_role(), "experiment": "new", **change})
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Job.objects.exists() and not Task.objects.exists() and not Experiment.objects.exists()
    assert not OrmQ.objects.exists()
