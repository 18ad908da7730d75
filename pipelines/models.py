"""Pipelines: a YAML DAG of jobs, its numbered versions, its runs, each run's steps and their jobs, schedules.

A pipeline keeps every version of its spec (``PipelineVersion``, the normalized spec of ``pipelines.spec``); a
run (``PipelineRun``) runs one version with its params. Each step of the spec is a ``RunStep`` of the run, with
its state and its outputs once it ended; each job a step started (one per foreach item and per attempt) is a
``StepJob``. Its unique (step, item, attempt) is what makes starting a job idempotent: the row and the job are
written in one transaction, so a redelivered advance finds the row and starts nothing.

On the portal's engine (``engine.py``) the site's clock advances every active run in bulk; on a Kubernetes
cluster whose settings say ``pipeline_engine: argo`` the run is an Argo ``Workflow`` (``argo.py``) whose
nodes the same tick reads back.
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """A short public id: ``r-`` and 8 characters (a job's is ``j-``)."""
    return "r-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class RunState(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCESS = "success", _("success")
    FAILED = "failed", _("failed")
    STOPPED = "stopped", _("stopped")


RUN_ACTIVE = frozenset({RunState.QUEUED, RunState.RUNNING})
RUN_FINAL = frozenset({RunState.SUCCESS, RunState.FAILED, RunState.STOPPED})


class StepState(models.TextChoices):
    WAITING = "waiting", _("waiting")
    SKIPPED = "skipped", _("skipped")
    RUNNING = "running", _("running")
    RETRYING = "retrying", _("retrying")
    CACHED = "cached", _("cached")
    SUCCESS = "success", _("success")
    FAILED = "failed", _("failed")
    STOPPED = "stopped", _("stopped")


STEP_FINAL = frozenset({StepState.SKIPPED, StepState.CACHED, StepState.SUCCESS, StepState.FAILED, StepState.STOPPED})
STEP_SUCCEEDED = frozenset({StepState.SUCCESS, StepState.CACHED})


class Engine(models.TextChoices):
    PORTAL = "portal", _("portal")
    ARGO = "argo", _("Argo Workflows")


class Concurrency(models.TextChoices):
    ALLOW = "allow", _("allow")
    FORBID = "forbid", _("forbid")
    REPLACE = "replace", _("replace")


class Pipeline(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="pipelines")
    name = models.SlugField(_("name"), max_length=40)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pipelines")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    latest = models.PositiveIntegerField(_("latest version"), default=0)

    class Meta:
        ordering = ["team", "name"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="pipeline_name_unique_in_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class PipelineVersion(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    spec = models.JSONField(_("spec"))  # normalized (pipelines.spec.validate)
    source = models.TextField(_("source"), blank=True)  # as written (YAML or JSON)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "-number"]
        verbose_name = _("pipeline version")
        verbose_name_plural = _("pipeline versions")
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_version_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline} v{self.number}"


class Schedule(models.Model):
    """Runs of a pipeline's latest version at the times of a cron expression in a timezone."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="schedules")
    name = models.SlugField(_("name"), max_length=40)
    cron = models.CharField(_("cron"), max_length=100)
    timezone = models.CharField(_("timezone"), max_length=64, default="UTC")
    params = models.JSONField(_("params"), default=dict, blank=True)
    concurrency = models.CharField(
        _("concurrency"), max_length=10, choices=Concurrency.choices, default=Concurrency.ALLOW
    )
    max_active = models.PositiveIntegerField(_("most active runs"), default=1)
    catch_up = models.BooleanField(
        _("catch up"), default=True, help_text=_("Make runs missed while the portal was down.")
    )
    catch_up_limit = models.PositiveIntegerField(_("most missed runs made"), default=10)
    paused = models.BooleanField(_("paused"), default=False)
    # The last cron time handled (a run made, or skipped by concurrency): the next tick starts after it.
    last_time = models.DateTimeField(_("last time"), null=True, blank=True)
    next_time = models.DateTimeField(_("next time"), null=True, blank=True, db_index=True)
    message = models.CharField(_("message"), max_length=300, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "name"]
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        constraints = [models.UniqueConstraint(fields=["pipeline", "name"], name="schedule_name_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline}: {self.name}"


class PipelineRun(models.Model):
    public_id = models.CharField(_("id"), max_length=16, unique=True, default=new_run_id, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(PipelineVersion, on_delete=models.PROTECT, related_name="runs")
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pipeline_runs")
    params = models.JSONField(_("params"), default=dict)  # every param, defaults filled in
    state = models.CharField(_("state"), max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    message = models.TextField(_("message"), blank=True)
    engine = models.CharField(_("engine"), max_length=10, choices=Engine.choices, default=Engine.PORTAL)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("The cluster an Argo run's Workflow is on."),
    )  # fmt: skip
    workflow = models.CharField(_("workflow"), max_length=63, blank=True)
    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    scheduled_for = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    rerun_from = models.CharField(_("rerun from step"), max_length=40, blank=True)
    stop_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("pipeline run")
        verbose_name_plural = _("pipeline runs")
        constraints = [
            # A schedule's time makes one run, whatever delivers the tick twice.
            models.UniqueConstraint(fields=["schedule", "scheduled_for"], name="one_run_per_schedule_time"),
        ]
        indexes = [models.Index(fields=["state"], name="pipeline_run_state")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.state in RUN_FINAL


class RunStep(models.Model):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(_("step"), max_length=40)
    position = models.PositiveIntegerField()
    state = models.CharField(_("state"), max_length=10, choices=StepState.choices, default=StepState.WAITING)
    message = models.TextField(_("message"), blank=True)
    # A foreach step's items, resolved when it starts (None: not a foreach step, or not started).
    items = models.JSONField(null=True, blank=True)
    # Once ended: {"parameters": {name: value or [values]}, "artifacts": {name: "j-…/model_dir/…" or [...]},
    # "digests": {artifact: sha256 or [...]}}, the job id(s) under parameters.job_id.
    outputs = models.JSONField(default=dict, blank=True)
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        verbose_name = _("run step")
        verbose_name_plural = _("run steps")
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="run_step_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.name}"

    @property
    def is_final(self) -> bool:
        return self.state in STEP_FINAL


class StepJob(models.Model):
    """One job a step started: per foreach item (0 for a plain step) and per attempt (1, then retries)."""

    step = models.ForeignKey(RunStep, on_delete=models.CASCADE, related_name="jobs")
    item = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The job's end as the engine saw it: "" while it runs, then success / failed / stopped.
    outcome = models.CharField(max_length=10, blank=True)
    # A retry that waits for its back-off: when it is due (the next attempt's row is made then).
    retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step", "item", "attempt"]
        verbose_name = _("step job")
        verbose_name_plural = _("step jobs")
        constraints = [
            # Starting a job is idempotent: a second advance of the same step, item and attempt fails here.
            models.UniqueConstraint(fields=["step", "item", "attempt"], name="step_job_once"),
        ]

    def __str__(self) -> str:
        return f"{self.step}[{self.item}]#{self.attempt}"
