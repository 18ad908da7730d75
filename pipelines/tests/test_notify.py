"""A run's end goes out by the channels jobs use: an e-mail to its owner and the team's webhook, once."""

from __future__ import annotations

from django.core import mail

from pipelines import services
from pipelines.notify import send_for_run
from testing.pipelines import CHAIN, jobs_of, save


def test_a_run_that_ends_is_sent_once_by_email_and_webhook(
    owner, team, settings, webhook_server, drive, django_capture_on_commit_callbacks
):
    url, received = webhook_server
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the test's receiver is on loopback
    settings.EASYAI_NOTIFY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    team.webhook_url = url
    team.save()
    run = services.run_submit(user=owner, pipeline=save(owner, CHAIN).pipeline)
    drive.tick()
    with django_capture_on_commit_callbacks(execute=True):
        drive.end(jobs_of(run, "pretrain")[0], "failed", exit_code=1)
        drive.tick()
    ended = [body for _, body in received if body["event"] == "pipeline_run.ended"]
    assert len(ended) == 1
    assert ended[0]["run"]["id"] == run.public_id and ended[0]["run"]["state"] == "failed"
    assert ended[0]["run"]["steps"] == {"pretrain": "failed", "finetune": "skipped"}
    assert ended[0]["run"]["url"].endswith(f"/pipelines/runs/{run.public_id}/")
    subjects = [m.subject for m in mail.outbox if "pipeline" in m.subject]
    assert subjects == [f"[EasyAI] pipeline chain ({run.public_id}) is failed"]
    assert send_for_run(run.pk) == {"email": False, "webhook": False}  # a second delivery sends nothing
