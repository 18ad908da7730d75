from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("teams", "0005_notebook_lease_bounded")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="source",
            field=models.CharField(
                choices=[("hand", "by hand"), ("directory", "directory group")],
                default="hand",
                max_length=10,
                verbose_name="source",
            ),
        ),
    ]
