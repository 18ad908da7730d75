"""Alerts, through the platform's e-mail and webhook channels (EASYAI_NOTIFY_EMAIL, EASYAI_NOTIFY_WEBHOOKS):

- a GPU job idle: every GPU utilisation sample of its tasks over the last ``idle_gpu_minutes`` under
  ``idle_gpu_threshold`` percent tells its owner; with ``idle_gpu_action: stop`` the job is stopped too
  (reason ``idle``, the figures in its message);
- a job still waiting to start after ``pending_alert_minutes`` tells its owner why (the backend's waiting
  reason, a task's scheduling or image-pull message, the team's quota);
- a cluster whose sync failed EASYAI_SYNC_ALERT_FAILURES passes in a row tells the platform admins (staff with
  an e-mail address) once per outage, and again when it recovers.

The thresholds are the cluster's settings (clusters/alert_settings.py). Each alert is remembered in a
``monitoring.Alert`` row claimed before anything is sent (a unique constraint): a second pass, or a second
worker, sends nothing again. ``alert_tasks.py`` runs ``scan`` from the site's clock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.alert_settings import alert_settings
from clusters.backends.base import WAITING_REASONS
from clusters.models import Cluster
from jobs import selectors as job_selectors
from jobs import services as job_services
from jobs.models import Job
from jobs.state import JobState
from monitoring.models import Alert, UsageSample
from teams import webhooks

log = logging.getLogger(__name__)

WAITING = (JobState.QUEUED, JobState.UNKNOWN, JobState.PENDING)


@dataclass(frozen=True)
class Idle:
    job: Job
    peak: float  # the highest utilisation sampled in the window, percent
    minutes: float
    threshold: float


# --- sending ------------------------------------------------------------------------------------


def _job_url(job: Job) -> str:
    return f"{settings.SITE_URL}/jobs/{job.public_id}/"


def _claim(**fields) -> Alert | None:
    """The alert's row, created now: None when it exists already (sent before, or by another worker now)."""
    try:
        with transaction.atomic():
            return Alert.objects.create(sent_at=timezone.now(), **fields)
    except IntegrityError:
        return None


def _tell_owner(job: Job, kind: str, subject: str, text: str) -> dict[str, bool]:
    """E-mail the job's owner and post to the team's webhook, as the channels are switched on; never raises."""
    sent = {"email": False, "webhook": False}
    if settings.EASYAI_NOTIFY_EMAIL and job.owner.email:
        try:
            send_mail(subject, f"{text}\n\n{_job_url(job)}\n", settings.DEFAULT_FROM_EMAIL, [job.owner.email])
            sent["email"] = True
        except Exception as exc:  # the mail server is not ours to trust
            log.warning("alert e-mail for %s failed: %s", job.public_id, exc)
    if settings.EASYAI_NOTIFY_WEBHOOKS and job.team.webhook_url:
        body = {
            "event": f"job.{kind}",
            "job": {
                "id": job.public_id,
                "name": job.name,
                "team": job.team.slug,
                "owner": job.owner.username,
                "state": job.state,
                "url": _job_url(job),
            },
            "message": text,
            "time": timezone.now().isoformat(),
        }
        try:
            status = webhooks.post_json(job.team.webhook_url, json.dumps(body).encode(), timeout=5)
            sent["webhook"] = 200 <= status < 300
        except Exception as exc:  # refused (webhooks checks where it goes) or down: the alert stays sent
            log.warning("alert webhook for %s failed: %s", job.public_id, exc)
    return sent


def _tell_admins(subject: str, text: str) -> int:
    """E-mail every platform admin who has an address; how many were sent."""
    if not settings.EASYAI_NOTIFY_EMAIL:
        return 0
    addresses = list(
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .order_by("pk")
        .values_list("email", flat=True)
    )
    sent = 0
    for address in addresses:
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [address])
            sent += 1
        except Exception as exc:
            log.warning("alert e-mail to %s failed: %s", address, exc)
    return sent


# --- idle GPU jobs -------------------------------------------------------------------------------


def idle_gpu_jobs(cluster: Cluster, now: datetime) -> list[Idle]:
    """The cluster's running GPU jobs whose every GPU sample over the cluster's idle window is under its threshold.

    The samples must cover the window (the first within a tenth of it, at least a minute, of its start), so a
    job whose sampling just began is not called idle. One query for all of the cluster's jobs.
    """
    config = alert_settings(cluster.settings)
    if config.idle_gpu_minutes <= 0:
        return []
    window = timedelta(minutes=config.idle_gpu_minutes)
    start = now - window
    candidates = {
        job.pk: job
        for job in Job.objects.filter(cluster=cluster, state=JobState.RUNNING, gpu__gt=0, started_at__lte=start)
        .exclude(pk__in=Alert.objects.filter(kind=Alert.Kind.IDLE_GPU, job__isnull=False).values("job_id"))
        .select_related("owner", "team")
    }
    if not candidates:
        return []
    slack = max(timedelta(minutes=1), window / 10)
    rows = (
        UsageSample.objects.filter(job__in=list(candidates), at__gt=start, at__lte=now, gpu_util__isnull=False)
        .order_by()
        .values("job")
        .annotate(peak=Max("gpu_util"), first=Min("at"), samples=Count("id"))
    )
    return [
        Idle(candidates[row["job"]], row["peak"], config.idle_gpu_minutes, config.idle_gpu_threshold)
        for row in rows
        if row["peak"] < config.idle_gpu_threshold and row["first"] <= start + slack and row["samples"] >= 2
    ]


def _alert_idle(cluster: Cluster, idle: Idle) -> str:
    """What this pass did: "stopped" or "told" the owner, "" when the job was alerted on before."""
    job = idle.job
    why = _("Its GPU utilisation stayed under %(threshold)s%% for %(minutes)s minutes (at most %(peak).1f%%).") % {
        "threshold": f"{idle.threshold:g}",
        "minutes": f"{idle.minutes:g}",
        "peak": idle.peak,
    }
    alert = _claim(kind=Alert.Kind.IDLE_GPU, job=job, cluster=cluster, message=why)
    if alert is None:
        return ""
    names = {"name": job.name, "id": job.public_id}
    if alert_settings(cluster.settings).idle_gpu_action != "stop":
        subject = _("[EasyAI] %(name)s (%(id)s) holds GPUs it does not use") % names
        _tell_owner(job, "idle_gpu", subject, why + " " + _("Stop it if it is done, to free its GPUs for others."))
        return "told"
    try:
        job_services.job_stop(job=job, reason="idle", message=_("Stopped as idle: %(why)s") % {"why": why})
    except job_services.JobActionRefused as exc:
        log.info("idle job %s not stopped: %s", job.public_id, exc)  # it ended meanwhile: nothing to tell
        return ""
    Alert.objects.filter(pk=alert.pk).update(action="stopped")
    subject = _("[EasyAI] %(name)s (%(id)s) was stopped: its GPUs were idle") % names
    _tell_owner(job, "idle_gpu", subject, why + " " + _("This cluster stops idle GPU jobs (idle_gpu_action: stop)."))
    return "stopped"


# --- jobs waiting too long ------------------------------------------------------------------------


def why_it_waits(job: Job) -> str:
    """What the owner reads: the job's waiting line and each task's own reason (the scheduler's, a pull's)."""
    parts = []
    try:
        line = job_selectors.why_waiting(job)
    except Exception as exc:  # the waiting line asks the cluster for its capacity: it may be down
        line = job.message
        log.info("waiting line of %s: %s", job.public_id, exc)
    if line:
        parts.append(line)
    for task in job.tasks.all():
        if task.reason in WAITING_REASONS and task.message and task.message not in line:
            parts.append(f"{task.name}: {task.reason}: {task.message}")
    return "\n".join(parts) or _("The cluster gave no reason yet.")


def pending_too_long(cluster: Cluster, now: datetime) -> list[Job]:
    config = alert_settings(cluster.settings)
    if config.pending_alert_minutes <= 0:
        return []
    return list(
        Job.objects.filter(
            cluster=cluster,
            state__in=WAITING,
            deleted=False,
            created_at__lte=now - timedelta(minutes=config.pending_alert_minutes),
        )
        .exclude(pk__in=Alert.objects.filter(kind=Alert.Kind.PENDING, job__isnull=False).values("job_id"))
        .select_related("owner", "team", "cluster")
    )


def _alert_pending(cluster: Cluster, job: Job, now: datetime) -> bool:
    minutes = int((now - job.created_at).total_seconds() // 60)
    why = why_it_waits(job)
    if _claim(kind=Alert.Kind.PENDING, job=job, cluster=cluster, message=why) is None:
        return False
    subject = _("[EasyAI] %(name)s (%(id)s) has waited %(minutes)s minutes to start") % {
        "name": job.name,
        "id": job.public_id,
        "minutes": minutes,
    }
    _tell_owner(job, "pending", subject, _("Why it waits:") + "\n" + why)
    return True


# --- clusters whose sync keeps failing ------------------------------------------------------------


def sync_failures(cluster: Cluster) -> int:
    """How many sync passes in a row failed on the cluster (jobs.tasks.sync_cluster counts them)."""
    return cache.get(f"easyai:sync-failures:{cluster.pk}") or 0


def _alert_sync(cluster: Cluster, now: datetime) -> str:
    """What admins were told now: "failing", "recovered" or nothing ("")."""
    failures = sync_failures(cluster)
    open_alert = Alert.objects.filter(kind=Alert.Kind.SYNC_FAILING, cluster=cluster, resolved_at__isnull=True).first()
    if failures >= settings.EASYAI_SYNC_ALERT_FAILURES and open_alert is None:
        health = cluster.health_message or _("the cluster did not answer")
        text = _(
            "The sync of cluster %(cluster)s has failed %(failures)s times in a row: its jobs' states are not "
            "followed until it answers again. Last word on its health: %(health)s"
        ) % {"cluster": cluster.name, "failures": failures, "health": health}
        if _claim(kind=Alert.Kind.SYNC_FAILING, cluster=cluster, message=text) is None:
            return ""
        _tell_admins(_("[EasyAI] cluster %(cluster)s: sync failing") % {"cluster": cluster.name}, text)
        return "failing"
    if failures == 0 and open_alert is not None:
        # Closed by one worker only (a compare-and-set): the recovery is told once.
        if not Alert.objects.filter(pk=open_alert.pk, resolved_at__isnull=True).update(resolved_at=now):
            return ""
        text = _("The sync of cluster %(cluster)s works again (failing since %(since)s).") % {
            "cluster": cluster.name,
            "since": timezone.localtime(open_alert.sent_at).strftime("%Y-%m-%d %H:%M"),
        }
        _tell_admins(_("[EasyAI] cluster %(cluster)s: sync recovered") % {"cluster": cluster.name}, text)
        return "recovered"
    return ""


# --- the pass ----------------------------------------------------------------------------------


def scan(now: datetime | None = None) -> dict[str, int]:
    """One alerts pass over every enabled cluster: what was sent, by kind."""
    now = now or timezone.now()
    counts = {"idle_gpu": 0, "stopped": 0, "pending": 0, "sync_failing": 0, "sync_recovered": 0}
    for cluster in Cluster.objects.filter(enabled=True):
        for idle in idle_gpu_jobs(cluster, now):
            if done := _alert_idle(cluster, idle):
                counts["idle_gpu"] += 1
                counts["stopped"] += done == "stopped"
        for job in pending_too_long(cluster, now):
            counts["pending"] += _alert_pending(cluster, job, now)
        told = _alert_sync(cluster, now)
        if told == "failing":
            counts["sync_failing"] += 1
        elif told == "recovered":
            counts["sync_recovered"] += 1
    return counts
