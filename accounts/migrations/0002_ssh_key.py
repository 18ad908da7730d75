import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SSHKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, verbose_name="name")),
                ("public_key", models.TextField(verbose_name="public key")),
                (
                    "fingerprint",
                    models.CharField(
                        help_text="SHA256, as ssh-keygen -l prints it.", max_length=64, verbose_name="fingerprint"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("last_used_at", models.DateTimeField(blank=True, null=True, verbose_name="last used at")),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ssh_keys",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "SSH key",
                "verbose_name_plural": "SSH keys",
                "ordering": ["user", "created_at", "pk"],
                "constraints": [
                    models.UniqueConstraint(fields=("user", "fingerprint"), name="one_ssh_key_per_fingerprint_and_user"),
                    models.UniqueConstraint(fields=("user", "name"), name="one_ssh_key_name_per_user"),
                ],
            },
        ),
    ]
