import django.db.models.deletion
from django.db import migrations, models


def content_type_to_clusters(apps, schema_editor):
    """Admin log entries and permissions follow the model: its content type changes app, keeping its id."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="clusters", model="quota").exists():
        ContentType.objects.using(db).filter(app_label="teams", model="quota").update(app_label="clusters")


def content_type_to_teams(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="teams", model="quota").exists():
        ContentType.objects.using(db).filter(app_label="clusters", model="quota").update(app_label="teams")


class Migration(migrations.Migration):
    """The per-cluster quota, moved from the teams app: the same table (teams_quota), rows, indexes and constraint."""

    dependencies = [
        ("clusters", "0002_field_key_of_its_own"),
        ("teams", "0004_quota_moves_to_clusters"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Quota",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("cpu_milli", models.PositiveBigIntegerField(default=0, verbose_name="CPU (millicores)")),
                        ("memory_bytes", models.PositiveBigIntegerField(default=0, verbose_name="memory (bytes)")),
                        ("gpu", models.PositiveIntegerField(default=0, verbose_name="GPUs")),
                        (
                            "cluster",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="quotas",
                                to="clusters.cluster",
                            ),
                        ),
                        (
                            "team",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="quotas", to="teams.team"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "quota",
                        "verbose_name_plural": "quotas",
                        "db_table": "teams_quota",
                        "ordering": ["team", "cluster"],
                        "constraints": [
                            models.UniqueConstraint(fields=("team", "cluster"), name="one_quota_per_team_cluster")
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_type_to_clusters, content_type_to_teams),
    ]
