from django.db import migrations


class Migration(migrations.Migration):
    """The per-cluster quota moves to the clusters app (clusters 0003 takes it); its table stays as it is."""

    dependencies = [
        ("teams", "0003_hash_legacy_tokens"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Quota")]),
    ]
