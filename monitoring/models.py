"""What jobs use, and what it costs: usage samples per task, kept downsampled; prices per cluster; each job's
accounting.

A sample is the average over its interval: CPU in cores (CPU seconds over wall seconds), memory the resident
(local) or working-set (Kubernetes) bytes at its end, and for GPUs the mean utilisation (0-100) and memory
used over the task's GPUs. Samples are raw (``resolution`` 0: as the sampler took them, every few seconds)
for a day, then one-minute points for a week, then hourly points (``monitoring/retention.py``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Resolution(models.IntegerChoices):
    RAW = 0, _("raw")
    MINUTE = 60, _("one minute")
    HOUR = 3600, _("one hour")


class UsageSample(models.Model):
    task = models.ForeignKey("jobs.Task", on_delete=models.CASCADE, related_name="usage_samples")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="usage_samples")
    at = models.DateTimeField(_("at"))  # the end of the interval
    seconds = models.FloatField(_("interval (s)"))  # the interval it covers
    resolution = models.PositiveIntegerField(_("resolution"), choices=Resolution.choices, default=Resolution.RAW)
    cpu_cores = models.FloatField(_("CPU (cores)"))
    memory_bytes = models.BigIntegerField(_("memory (bytes)"))
    gpu_util = models.FloatField(_("GPU utilisation (%)"), null=True, blank=True)
    gpu_memory_bytes = models.BigIntegerField(_("GPU memory (bytes)"), null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("usage sample")
        verbose_name_plural = _("usage samples")
        indexes = [
            models.Index(fields=["job", "at"], name="usage_job_at"),
            models.Index(fields=["resolution", "at"], name="usage_resolution_at"),
        ]


class Price(models.Model):
    """What an hour of each resource costs on a cluster (platform admins set it)."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="price")
    currency = models.CharField(_("currency"), max_length=8, default="USD")
    core_hour = models.DecimalField(_("per core-hour"), max_digits=12, decimal_places=6, default=0)
    gib_hour = models.DecimalField(_("per GiB-hour"), max_digits=12, decimal_places=6, default=0)
    gpu_hour = models.DecimalField(_("per GPU-hour"), max_digits=12, decimal_places=6, default=0)
    # GPU model (as the cluster reports it, e.g. "A100-SXM4-80GB") -> price per GPU-hour; others pay gpu_hour.
    gpu_hour_by_model = models.JSONField(_("per GPU-hour by model"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")

    def __str__(self) -> str:
        return f"{self.cluster} ({self.currency})"


# What the usage report reads of each row besides its team and day (monitoring/report.py): kept in its indexes.
USAGE_REPORT_FIELDS = [
    "owner", "job", "running_seconds", "core_hours_requested", "core_hours_used", "gib_hours_requested",
    "gib_hours_used", "gpu_hours_requested", "gpu_hours_used", "cost", "currency",
]  # fmt: skip


class JobUsage(models.Model):
    """A job's accounting, kept up to date as its samples come in and closed when it ends.

    Requested: each task's request × its running time. Used: Σ sample × its interval. Cost: Σ over the intervals
    of interval × max(requested, used) × price (OpenCost's allocation rule; GPUs by request).
    """

    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="usage")
    # Copied from the job so that the Usage page groups and filters without joining it.
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))  # the day it started (or was created), in the site's time zone
    running_seconds = models.FloatField(_("running (s)"), default=0)
    core_hours_requested = models.FloatField(default=0)
    core_hours_used = models.FloatField(default=0)
    gib_hours_requested = models.FloatField(default=0)
    gib_hours_used = models.FloatField(default=0)
    gpu_hours_requested = models.FloatField(default=0)
    gpu_hours_used = models.FloatField(default=0)  # GPU-hours × mean utilisation
    # What the samples used above the request, interval by interval (Σ interval × max(0, used − requested)):
    # charged on top of the request, so cost = (requested + over) × price, kept incrementally.
    core_hours_over = models.FloatField(default=0)
    gib_hours_over = models.FloatField(default=0)
    cost = models.DecimalField(_("cost"), max_digits=16, decimal_places=6, default=0)
    currency = models.CharField(_("currency"), max_length=8, default="USD")
    # Mean used ÷ requested over the job's life (None: nothing requested or nothing sampled yet).
    cpu_efficiency = models.FloatField(null=True, blank=True)
    memory_efficiency = models.FloatField(null=True, blank=True)
    gpu_efficiency = models.FloatField(null=True, blank=True)
    last_sample_at = models.DateTimeField(null=True, blank=True)
    closed = models.BooleanField(default=False)  # the job ended and every sample is counted
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("job usage")
        verbose_name_plural = _("job usage")
        indexes = [
            # The Usage page and API aggregate a team's rows (or every team's) over a range of days: these two
            # indexes hold every figure they sum, so the sums read the index alone, never the table.
            models.Index(fields=["team", "day", *USAGE_REPORT_FIELDS], name="jobusage_team_day"),
            models.Index(fields=["day", "team", *USAGE_REPORT_FIELDS], name="jobusage_day"),
            # The accounting pass reads the open rows only: it does not grow with the finished jobs.
            models.Index(fields=["closed"], name="jobusage_closed"),
        ]


class Alert(models.Model):
    """An alert that was sent, kept so that it is sent once (monitoring/alerts.py).

    A job's alert of a kind is sent once in its life (a unique row is claimed before anything is sent). A
    cluster's sync alert stays open until the cluster recovers (``resolved_at``); a later outage opens a new one.
    """

    class Kind(models.TextChoices):
        IDLE_GPU = "idle_gpu", _("GPU idle")
        PENDING = "pending", _("waiting too long")
        SYNC_FAILING = "sync_failing", _("cluster sync failing")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey("clusters.Cluster", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    message = models.TextField(_("message"), blank=True)
    action = models.CharField(_("action"), max_length=20, blank=True)  # "stopped": the idle job was stopped
    sent_at = models.DateTimeField(_("sent"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "job"], condition=models.Q(job__isnull=False), name="alert_once_per_job"
            ),
            models.UniqueConstraint(
                fields=["kind", "cluster"],
                condition=models.Q(cluster__isnull=False, resolved_at__isnull=True),
                name="alert_one_open_per_cluster",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.job_id or self.cluster_id} at {self.sent_at:%Y-%m-%d %H:%M}"
