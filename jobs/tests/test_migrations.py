"""Migrations that rename or move columns keep every row's values."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(target: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_the_submit_retry_fields_are_renamed_with_their_values_and_index(owner, team, fake_backend):
    old = _migrate([("jobs", "0005_task_ready_endpoints")])
    OldJob = old.get_model("jobs", "Job")
    due = timezone.now()
    row = OldJob.objects.create(
        public_id="j-renamed1", name="r", team_id=team.pk, owner_id=owner.pk,
        cluster_id=fake_backend.cluster.pk, framework="pytorch", spec={}, retry_count=3, next_attempt_at=due,
        last_error="503 Service Unavailable",
    )  # fmt: skip
    new = _migrate([("jobs", "0006_submit_retry_fields_event_notified_at")])
    job = new.get_model("jobs", "Job").objects.get(pk=row.pk)
    assert (job.submit_attempts, job.submit_retry_at, job.submit_error) == (3, due, "503 Service Unavailable")
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "jobs_job")
    assert indexes["job_state_attempt"]["columns"] == ["state", "submit_retry_at"]
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # the rest of the suite sees today's schema
