from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_task_ready_endpoints"),
    ]

    operations = [
        # Named like the stop-retry fields (stop_attempts, stop_retry_at, stop_error); the columns keep their data.
        migrations.RenameField(model_name="job", old_name="retry_count", new_name="submit_attempts"),
        migrations.RenameField(model_name="job", old_name="next_attempt_at", new_name="submit_retry_at"),
        migrations.RenameField(model_name="job", old_name="last_error", new_name="submit_error"),
        # The index already follows its renamed column in the database: only the recorded state names the new field.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name="job_state_attempt"),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(fields=["state", "submit_retry_at"], name="job_state_attempt"),
                ),
            ],
        ),
        migrations.AddField(
            model_name="jobevent",
            name="notified_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="notified"),
        ),
    ]
