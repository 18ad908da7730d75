"""Experiments, jobs, tasks and job events."""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from jobs.spec import Framework, Priority
from jobs.state import FINAL, JobState

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_job_id() -> str:
    """A short public id, unique for good: ``j-`` and 8 characters, a valid DNS-1035 label prefix."""
    return "j-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}


class Experiment(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="experiments")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="experiment_name_unique_in_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class Job(models.Model):
    public_id = models.CharField(_("id"), max_length=16, unique=True, default=new_job_id, editable=False)
    name = models.CharField(_("name"), max_length=100)
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="jobs")
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="jobs")
    framework = models.CharField(_("framework"), max_length=20, choices=Framework.choices)
    spec = models.JSONField(_("spec"))

    state = models.CharField(_("state"), max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    message = models.TextField(_("message"), blank=True)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL)

    # Total limits over all tasks, for quota accounting without reading specs.
    cpu_milli = models.PositiveBigIntegerField(default=0)
    memory_bytes = models.PositiveBigIntegerField(default=0)
    gpu = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    scheduled_at = models.DateTimeField(_("scheduled"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(_("timeout (s)"), null=True, blank=True)
    max_retries = models.PositiveIntegerField(_("max retries"), default=0)

    # Submit bookkeeping: a submit the backend failed is retried with back-off (named like the stop's below).
    # submit_retry_at is also the lease on a submit handed to a worker, and when a job waiting for quota looks again.
    submit_attempts = models.PositiveIntegerField(_("retries"), default=0)
    submit_retry_at = models.DateTimeField(null=True, blank=True)
    submit_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True)
    stop_requested = models.BooleanField(default=False)
    # Stop bookkeeping: a stop the backend failed is retried with back-off until the backend confirms it.
    stop_retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    stop_attempts = models.PositiveIntegerField(_("failed stop attempts"), default=0)
    stop_error = models.TextField(_("last stop error"), blank=True)
    cleaned_up = models.BooleanField(default=False)
    # A failed task kept to look at (the spec's ``debug``): until when, and how ("keep_failed": the job has
    # failed and its tasks stay; "pause_on_failure": the failing task holds and the job shows it). Empty
    # when nothing is held, or once released or expired.
    held_until = models.DateTimeField(_("held until"), null=True, blank=True, db_index=True)
    held_mode = models.CharField(_("held for debugging"), max_length=20, blank=True)

    attempt = models.PositiveIntegerField(_("attempt"), default=1, help_text=_("1 for a first run; retries count up."))
    pre_job = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")

    deleted = models.BooleanField(_("deleted"), default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        indexes = [
            models.Index(fields=["cluster", "state"], name="job_cluster_state"),
            models.Index(fields=["team", "deleted", "created_at"], name="job_team_created"),
            models.Index(fields=["state", "submit_retry_at"], name="job_state_attempt"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.state in FINAL

    @property
    def is_held(self) -> bool:
        """Whether a failed task of the job is held for debugging now (its hold neither released nor run out)."""
        return self.held_until is not None and self.held_until > timezone.now()

    @property
    def duration(self):
        """How long it ran (or has been running)."""
        from django.utils import timezone

        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class Task(models.Model):
    # What the backend reports about a task, and which of its endpoints answer: written by the sync pass,
    # shown read-only everywhere.
    OBSERVED_FIELDS = (
        "state", "node", "pod_name", "address", "gpu_ids", "endpoints", "ready_endpoints", "exit_code", "reason",
        "message", "started_at", "finished_at",
    )  # fmt: skip

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        STOPPED = "stopped", _("stopped")
        MISSING = "missing", _("missing")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks")
    role = models.CharField(_("role"), max_length=63)
    index = models.PositiveIntegerField(_("index"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    node = models.CharField(_("host or node"), max_length=255, blank=True)
    pod_name = models.CharField(_("process or pod"), max_length=255, blank=True)
    address = models.CharField(_("address"), max_length=64, blank=True)
    gpu_ids = models.JSONField(_("GPUs"), default=list, blank=True)
    # Named web endpoints the task serves now (spec "ports"): name -> "host:port" where the portal's
    # proxy reaches it; empty unless the task runs.
    endpoints = models.JSONField(_("endpoints"), default=dict, blank=True)
    # The names among ``endpoints`` that passed their readiness check (jobs/readiness.py) at their current
    # address: the proxy routes to these only, and a notebook is "running" only once its endpoint is here.
    ready_endpoints = models.JSONField(_("ready endpoints"), default=list, blank=True)
    exit_code = models.IntegerField(_("exit code"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    message = models.TextField(_("message"), blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["job", "role", "index"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        constraints = [models.UniqueConstraint(fields=["job", "role", "index"], name="task_unique_in_job")]

    def __str__(self) -> str:
        return f"{self.job.public_id}/{self.name}"

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    def ready_address(self, name: str) -> str:
        """host:port of the named endpoint once it runs and passed its readiness check; "" until then."""
        if self.state != self.State.RUNNING or name not in (self.ready_endpoints or []):
            return ""
        return (self.endpoints or {}).get(name, "")


class JobEvent(models.Model):
    """One state transition: the audit trail and the outbox for notifications."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(_("from"), max_length=10, choices=JobState.choices)
    to_state = models.CharField(_("to"), max_length=10, choices=JobState.choices)
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    message = models.TextField(_("message"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    # Set by the one notify task that claims the event (a compare-and-set): a redelivered task sends nothing.
    notified_at = models.DateTimeField(_("notified"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("job event")
        verbose_name_plural = _("job events")

    def __str__(self) -> str:
        return f"{self.job_id}: {self.from_state} → {self.to_state}"


class Volume(models.Model):
    """An admin-defined volume that job specs name under ``volumes``."""

    name = models.SlugField(_("name"), max_length=63, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    mount_path = models.CharField(_("mount path"), max_length=300, help_text=_("Where tasks see it, e.g. /datasets."))
    read_only = models.BooleanField(_("read-only"), default=True)
    host_path = models.CharField(
        _("host path"), max_length=300, blank=True, help_text=_("On the local backend: the directory on this host.")
    )
    nfs_server = models.CharField(_("NFS server"), max_length=200, blank=True)
    nfs_path = models.CharField(_("NFS path"), max_length=300, blank=True)
    teams = models.ManyToManyField(
        "teams.Team", blank=True, related_name="volumes", help_text=_("Teams that may use it; none means every team.")
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("volume")
        verbose_name_plural = _("volumes")

    def __str__(self) -> str:
        return self.name

    def as_dict(self) -> dict:
        """The volume as a Kubernetes volume (name and source) plus where and how tasks mount it."""
        if self.nfs_server:
            source = {"nfs": {"server": self.nfs_server, "path": self.nfs_path or "/", "readOnly": self.read_only}}
        else:
            source = {"hostPath": {"path": self.host_path, "type": "Directory"}}
        return {"name": self.name, "mount_path": self.mount_path, "read_only": self.read_only, **source}

    @property
    def env_name(self) -> str:
        """On the local backend (no mounts) tasks find the volume's directory in this variable."""
        return "EASYAI_VOLUME_" + self.name.upper().replace("-", "_")


class ShellSession(models.Model):
    """One interactive shell opened in a task: who, when, which job and task, for how long, from where.

    Written when the shell opens and closed when it ends, so an operator sees open shells too.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(_("user"), max_length=150, help_text=_("Kept when the account is deleted."))
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shell_sessions")
    task = models.CharField(_("task"), max_length=80)
    kind = models.CharField(
        _("kind"), max_length=8, default="shell", choices=[("shell", _("web shell")), ("ssh", _("SSH"))]
    )
    client = models.CharField(_("client address"), max_length=100, blank=True)
    opened_at = models.DateTimeField(_("opened"), auto_now_add=True, db_index=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    exit_code = models.IntegerField(_("exit code"), null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = _("shell session")
        verbose_name_plural = _("shell sessions")

    def __str__(self) -> str:
        return f"{self.username} in {self.job_id}/{self.task}"

    @property
    def duration(self):
        """How long the shell was (or has been) open."""
        from django.utils import timezone

        return (self.closed_at or timezone.now()) - self.opened_at


class JobClusterEvent(models.Model):
    """A cluster's event about a job's objects (a Kubernetes Event on its pods or its training job).

    Kept after the cluster drops it (Kubernetes keeps events an hour) and after the job's objects are deleted:
    the "why did it wait / fail" record. A repeated event is one row whose count and time go up.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="cluster_events")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="cluster_events")
    uid = models.CharField(_("uid"), max_length=64)  # the event's uid on the cluster
    type = models.CharField(_("type"), max_length=16)  # Normal or Warning
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    message = models.TextField(_("message"), blank=True)
    count = models.PositiveIntegerField(_("count"), default=1)
    object = models.CharField(_("object"), max_length=300, blank=True)  # "Pod/j-ab12cd34-worker-0"
    first_at = models.DateTimeField(_("first seen"), null=True, blank=True)
    at = models.DateTimeField(_("last seen"))

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("cluster event")
        verbose_name_plural = _("cluster events")
        constraints = [models.UniqueConstraint(fields=["job", "uid"], name="cluster_event_once_per_job")]
        indexes = [models.Index(fields=["job", "at"], name="cluster_event_job_at")]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.type} {self.reason}"


class JobTemplate(models.Model):
    """A spec with ``{{field}}`` placeholders that users fill in to submit (``jobs/templates.py``).

    A team's template is seen by the team and changed by its owner or a team admin; a platform template
    (``team`` empty, loaded from ``examples/templates/`` by ``manage.py load_templates``) is seen by everyone
    and changed by platform admins only. ``fields``: name -> {"description": ..., "default": ...}.
    """

    team = models.ForeignKey(
        "teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="job_templates",
        help_text=_("Empty: a platform template, every team's."),
    )  # fmt: skip
    name = models.SlugField(_("name"), max_length=63)
    description = models.TextField(_("description"), blank=True)
    framework = models.CharField(_("framework"), max_length=20, choices=Framework.choices)
    spec = models.JSONField(_("spec"))
    fields = models.JSONField(_("fields"), default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="job_templates"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("job template")
        verbose_name_plural = _("job templates")
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="job_template_name_unique_in_team"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(team__isnull=True), name="job_template_name_unique_in_platform"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}" if self.team_id else self.name
