"""The per-cluster quota moved from the teams app to the clusters app: same table, same rows."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("teams", "0003_hash_legacy_tokens"), ("clusters", "0002_field_key_of_its_own")]
AFTER = [("clusters", "0003_quota_from_teams")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_moving_the_quota_model_keeps_its_rows_and_content_type(team, fake_backend):
    ContentType.objects.clear_cache()
    old = _migrate(BEFORE)
    ContentType.objects.filter(app_label="clusters", model="quota").delete()  # as on a database from before the move
    old_type = ContentType.objects.get_or_create(app_label="teams", model="quota")[0]
    row = old.get_model("teams", "Quota").objects.create(
        team_id=team.pk, cluster_id=fake_backend.cluster.pk, cpu_milli=4000, memory_bytes=2**33, gpu=2
    )
    new = _migrate(AFTER)
    moved = new.get_model("clusters", "Quota").objects.get(pk=row.pk)
    assert (moved.team_id, moved.cluster_id, moved.cpu_milli, moved.memory_bytes, moved.gpu) == (
        team.pk, fake_backend.cluster.pk, 4000, 2**33, 2,
    )  # fmt: skip
    # Admin log entries and permissions keep pointing at it: the same content type, now of the clusters app.
    assert ContentType.objects.get(pk=old_type.pk).app_label == "clusters"
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


def test_the_model_reads_the_same_table():
    from clusters.models import Quota

    assert Quota._meta.db_table == "teams_quota"
