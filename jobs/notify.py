"""Notifications on transitions into running and into final states: e-mail and a team webhook.

Both are off by default (EASYAI_NOTIFY_EMAIL, EASYAI_NOTIFY_WEBHOOKS), run in a
worker after the transition has committed, and never block or undo it.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from jobs.models import JobEvent
from teams import webhooks

log = logging.getLogger(__name__)


def payload(event: JobEvent) -> dict:
    job = event.job
    return {
        "event": "job.state_changed",
        "job": {
            "id": job.public_id,
            "name": job.name,
            "team": job.team.slug,
            "owner": job.owner.username,
            "framework": job.framework,
            "state": event.to_state,
            "url": f"{settings.SITE_URL}/jobs/{job.public_id}/",
        },
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "message": event.message,
        "time": event.created_at.isoformat(),
    }


def claim(event: JobEvent) -> bool:
    """Take the event's notification for this task (a compare-and-set on notified_at): True for one caller only."""
    now = timezone.now()
    if not JobEvent.objects.filter(pk=event.pk, notified_at__isnull=True).update(notified_at=now):
        return False
    event.notified_at = now
    return True


def send_for_event(event_pk: int) -> dict[str, bool]:
    """Send what is switched on for one transition, once; a failure is logged, never raised.

    django-q2 may deliver the notify task twice: the event is claimed before anything is sent, so a second
    delivery (or a second worker) sends nothing. A send that fails is not tried again (it never was).
    """
    event = JobEvent.objects.select_related("job__team", "job__owner").filter(pk=event_pk).first()
    sent = {"email": False, "webhook": False}
    if event is None:
        return sent
    job = event.job
    email = bool(settings.EASYAI_NOTIFY_EMAIL and job.owner.email)
    webhook = bool(settings.EASYAI_NOTIFY_WEBHOOKS and job.team.webhook_url)
    if not (email or webhook) or not claim(event):
        return sent
    body = payload(event)
    subject = f"[EasyAI] {job.name} ({job.public_id}) is {event.to_state}"
    text = f"{subject}\n\n{event.reason}: {event.message}\n\n{body['job']['url']}\n"
    return deliver(
        what=job.public_id, subject=subject, text=text, email_to=job.owner.email if email else "",
        webhook_url=job.team.webhook_url if webhook else "", body=body,
    )  # fmt: skip


def deliver(*, what: str, subject: str, text: str, email_to: str, webhook_url: str, body: dict) -> dict[str, bool]:
    """Send one notification by e-mail (when ``email_to``) and to a team's webhook (when ``webhook_url``): what
    job and pipeline notifications share. A failure is logged, never raised."""
    sent = {"email": False, "webhook": False}
    if email_to:
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [email_to])
            sent["email"] = True
        except Exception as exc:  # the mail server is not ours to trust
            log.warning("e-mail for %s failed: %s", what, exc)
    if webhook_url:
        # Checked again here, not only when saved: the name may resolve elsewhere now (teams.webhooks).
        try:
            status = webhooks.post_json(webhook_url, json.dumps(body).encode(), timeout=5)
            sent["webhook"] = 200 <= status < 300
            if not sent["webhook"]:
                log.warning("webhook for %s answered %s (redirects are not followed)", what, status)
        except webhooks.WebhookRefusedError as exc:
            log.warning("webhook for %s refused: %s", what, exc)
        except Exception as exc:  # a team's endpoint may be down; the job goes on
            log.warning("webhook for %s failed: %s", what, exc)
    return sent
