"""Apps: Streamlit, Gradio or any web app of a team, published from a folder and served at a URL of its own.

An app outlives its runs, as a notebook does: each run is a single-task job of the jobs app (framework
``app``) that serves the app's current revision (``job`` always points at the latest run). A revision is a
copy of the app's folder made when it was published, kept under ``apps/{team}/{name}/{number}/`` in the
storage root and seen read-only by the run at ``$app_dir`` (``/app`` in a pod), so later edits of the
workspace change nothing until the next publish. The app is served at ``/apps/{team}/{name}/`` on the
endpoint origin (``apps/proxy.py``); with no request for ``idle_minutes`` it sleeps (its run stops), and the
next request wakes it.

Its state is read from its run's job and from ``status``, what its owner wants: ``active`` (run, and sleep
when idle), ``sleeping`` (stopped for idleness: the next visitor wakes it) or ``stopped`` (stopped by a
person: it stays down until started).
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters import crypto
from endpoints import origin as endpoint_origin
from jobs.state import ACTIVE, JobState

APP_TASK = "app-0"  # the one task of an app's job (role "app", index 0)
WEB_PORT = "web"  # the name of the port the app serves on


class AppKind(models.TextChoices):
    STREAMLIT = "streamlit", "Streamlit"
    GRADIO = "gradio", "Gradio"
    CUSTOM = "custom", _("custom")


class Visibility(models.TextChoices):
    TEAM = "team", _("team")  # the team's members (and platform admins)
    SHARED = "shared", _("shared")  # the team's members and the users it is shared with
    PUBLIC = "public", _("public")  # anyone, signed in or not


class AppStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    SLEEPING = "sleeping", _("sleeping")
    STOPPED = "stopped", _("stopped")


class AppState(models.TextChoices):
    STARTING = "starting", _("starting")  # its run is queued, pending, or running but not healthy yet
    RUNNING = "running", _("running")  # its run answered its health check: requests go through
    SLEEPING = "sleeping", _("sleeping")  # stopped for idleness: the next request wakes it
    STOPPED = "stopped", _("stopped")  # stopped by a person
    FAILED = "failed", _("failed")  # its last run ended in failure (the message says why)


def app_host_label(team: str, name: str) -> str:
    """The DNS label of an app's own host under a wildcard endpoint origin (at most 63 characters).

    ``app--{name}--{team}`` where that is unambiguous, else ``app-`` and a digest: a name or a team with "--" in
    it could make two apps' labels alike (``x--y`` of team ``z``, ``x`` of team ``y--z``). Never an endpoint's
    (those begin with the job id, ``j-``) nor the serving host's."""
    label = f"app--{name}--{team}"
    if "--" in name or "--" in team or len(label) > 63:
        label = f"app-{hashlib.sha256(f'{team}/{name}'.encode()).hexdigest()[:32]}"
    return label


def app_origin(team: str, name: str) -> str:
    """Where an app answers: the endpoint origin (under a wildcard origin, a host of its own)."""
    where = endpoint_origin.origin()
    host = f"{app_host_label(team, name)}.{where.host}" if where.wildcard else where.host
    host = f"[{host}]" if ":" in host else host
    return f"{where.scheme}://{host}{f':{where.port}' if where.port else ''}"


def app_path(team: str, name: str) -> str:
    return f"/apps/{team}/{name}/"


class App(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="apps")
    name = models.CharField(_("name"), max_length=40)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="apps", verbose_name=_("owner")
    )
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="apps")
    description = models.CharField(_("description"), max_length=500, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=AppKind.choices)
    # Quantities as the user wrote them, as in a job spec ("500m", "4Gi").
    cpu = models.CharField(_("CPU"), max_length=32, default="1")
    memory = models.CharField(_("memory"), max_length=32, default="2Gi")
    gpu = models.PositiveIntegerField(_("GPUs"), default=0)
    image = models.CharField(_("image"), max_length=1024, blank=True)  # on Kubernetes; "" the site's default
    env = models.JSONField(_("environment"), default=dict, blank=True)  # name -> value, shown to the team
    # name -> value, encrypted with the site's field key; the API and pages only ever show the names.
    secrets_encrypted = models.TextField(blank=True, default="")
    visibility = models.CharField(_("visibility"), max_length=10, choices=Visibility.choices, default=Visibility.TEAM)
    shared_with = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="apps_shared_with_me", verbose_name=_("shared with")
    )
    idle_minutes = models.PositiveIntegerField(_("sleep after (minutes idle)"), default=30)  # 0: never sleeps
    status = models.CharField(_("status"), max_length=10, choices=AppStatus.choices, default=AppStatus.ACTIVE)
    revision = models.ForeignKey(
        "apps.AppRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("current revision"),
    )  # fmt: skip
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("current run")
    )
    message = models.TextField(_("message"), blank=True)  # why the last run failed or stopped
    last_request_at = models.DateTimeField(_("last request"), null=True, blank=True)
    # When the current run was asked for, and how long it took from then to its first healthy answer.
    run_requested_at = models.DateTimeField(_("start asked at"), null=True, blank=True)
    startup_seconds = models.FloatField(_("start-up time (s)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["team__slug", "name"]
        verbose_name = _("app")
        verbose_name_plural = _("apps")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="app_name_unique_per_team")]
        indexes = [models.Index(fields=["status"], name="app_status")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def path(self) -> str:
        return app_path(self.team.slug, self.name)

    @property
    def url(self) -> str:
        return app_origin(self.team.slug, self.name) + self.path

    @property
    def secrets(self) -> dict[str, str]:
        if not self.secrets_encrypted:
            return {}
        return json.loads(crypto.decrypt(self.secrets_encrypted))

    @secrets.setter
    def secrets(self, value: dict[str, str]) -> None:
        self.secrets_encrypted = crypto.encrypt(json.dumps(value, sort_keys=True)) if value else ""

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets)

    def _task(self):
        if self.job is None:
            return None
        return next((task for task in self.job.tasks.all() if task.name == APP_TASK), None)

    @property
    def ready(self) -> bool:
        """Its run answered its health check (recorded on the task by the sync pass): requests go through."""
        if self.job is None or self.job.state != JobState.RUNNING:
            return False
        task = self._task()
        return task is not None and bool(task.ready_address(WEB_PORT))

    @property
    def state(self) -> str:
        job = self.job
        if job is not None and job.state in ACTIVE:
            return AppState.RUNNING if self.ready else AppState.STARTING
        if self.status == AppStatus.SLEEPING:
            return AppState.SLEEPING
        if job is not None and job.state == JobState.FAILED:
            return AppState.FAILED
        if self.status == AppStatus.ACTIVE and job is not None and job.reason == "unhealthy":
            return AppState.FAILED
        return AppState.STOPPED

    def get_state_display(self) -> str:
        return str(AppState(self.state).label)


class AppRevision(models.Model):
    """One publish of an app's folder: its files, copied, and what runs them."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField(_("revision"))
    kind = models.CharField(_("kind"), max_length=20, choices=AppKind.choices)
    entry = models.CharField(_("entry file"), max_length=255, blank=True)
    command = models.TextField(_("command"), blank=True)  # a custom app's
    source = models.CharField(_("source"), max_length=1024, blank=True)  # the workspace folder, or "archive"
    files = models.JSONField(_("files"), default=list, blank=True)  # [{"path", "size", "sha256"}]
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    digest = models.CharField(_("digest"), max_length=64, blank=True)  # sha256 over the files' paths and digests
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("published by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("published"), auto_now_add=True)

    class Meta:
        ordering = ["app", "-number"]
        verbose_name = _("app revision")
        verbose_name_plural = _("app revisions")
        constraints = [models.UniqueConstraint(fields=["app", "number"], name="app_revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.app}#{self.number}"

    @property
    def source_ref(self) -> str:
        """What an app's job names as its ``app_source``: "{app}/{revision}"."""
        return f"{self.app.name}/{self.number}"
