"""Notifications when a pipeline run ends: e-mail to its owner and the team's webhook, the channels jobs use
(EASYAI_NOTIFY_EMAIL, EASYAI_NOTIFY_WEBHOOKS). Sent once, after the transition committed; never raised."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from jobs.notify import deliver
from pipelines.models import PipelineRun


def payload(run: PipelineRun) -> dict:
    return {
        "event": "pipeline_run.ended",
        "run": {
            "id": run.public_id,
            "pipeline": run.pipeline.name,
            "version": run.version.number,
            "team": run.team.slug,
            "owner": run.owner.username,
            "state": run.state,
            "url": f"{settings.SITE_URL}/pipelines/runs/{run.public_id}/",
            "steps": {step.name: step.state for step in run.steps.all()},
        },
        "reason": run.reason,
        "message": run.message,
        "time": (run.finished_at or timezone.now()).isoformat(),
    }


def send_for_run(run_pk: int) -> dict[str, bool]:
    sent = {"email": False, "webhook": False}
    run = PipelineRun.objects.select_related("pipeline", "version", "team", "owner").filter(pk=run_pk).first()
    if run is None or not run.is_final:
        return sent
    email = bool(settings.EASYAI_NOTIFY_EMAIL and run.owner.email)
    webhook = bool(settings.EASYAI_NOTIFY_WEBHOOKS and run.team.webhook_url)
    if not (email or webhook):
        return sent
    # Claimed once (a compare-and-set): a second delivery of the task sends nothing.
    if not PipelineRun.objects.filter(pk=run.pk, notified_at__isnull=True).update(notified_at=timezone.now()):
        return sent
    body = payload(run)
    subject = f"[EasyAI] pipeline {run.pipeline.name} ({run.public_id}) is {run.state}"
    return deliver(
        what=run.public_id, subject=subject, text=f"{subject}\n\n{run.reason}: {run.message}\n\n{body['run']['url']}\n",
        email_to=run.owner.email if email else "", webhook_url=run.team.webhook_url if webhook else "", body=body,
    )  # fmt: skip
