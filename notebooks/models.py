"""Notebook servers and TensorBoards: each run is a single-task job of the jobs app.

A notebook outlives its runs: stopping it ends its job, starting it again submits
a new job for the same notebook (``job`` always points at the latest run). Its
state is read from that job; nothing here writes a job's state.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from endpoints.paths import ENDPOINT_PREFIX, endpoint_path  # noqa: F401 - named here by notebooks' modules
from jobs.state import ACTIVE, JobState

NOTEBOOK_TASK = "notebook-0"  # the one task of a notebook job (role "notebook", index 0)
TENSORBOARD_TASK = "tensorboard-0"


class NotebookState(models.TextChoices):
    STARTING = "starting", _("starting")  # queued, pending, or running but not answering on its endpoint yet
    RUNNING = "running", _("running")  # its server answered its readiness check: it can be opened now
    STOPPED = "stopped", _("stopped")  # no run, or its last run ended (see the job's reason)


class Notebook(models.Model):
    class Kind(models.TextChoices):
        JUPYTERLAB = "jupyterlab", "JupyterLab"
        VSCODE = "vscode", "VS Code"

    name = models.CharField(_("name"), max_length=40)
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="notebooks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notebooks")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="notebooks")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.JUPYTERLAB)
    image = models.CharField(_("image"), max_length=1024, blank=True)
    # Quantities as the user wrote them, as in a job spec ("500m", "4Gi").
    cpu = models.CharField(_("CPU"), max_length=32, default="2")
    memory = models.CharField(_("memory"), max_length=32, default="4Gi")
    gpu = models.PositiveIntegerField(_("GPUs"), default=0)
    lease_hours = models.PositiveIntegerField(_("lease (hours)"), default=8)
    expires_at = models.DateTimeField(_("lease ends"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("current job")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notebook")
        verbose_name_plural = _("notebooks")
        constraints = [models.UniqueConstraint(fields=["team", "owner", "name"], name="notebook_name_unique_per_owner")]
        indexes = [models.Index(fields=["expires_at"], name="notebook_expires")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.owner.username}/{self.name}"

    @property
    def endpoint_name(self) -> str:
        return "vscode" if self.kind == self.Kind.VSCODE else "jupyter"

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.state in ACTIVE

    @property
    def state(self) -> str:
        job = self.job
        if job is None or job.state not in ACTIVE:
            return NotebookState.STOPPED
        if job.state == JobState.RUNNING and self.endpoint_ready:
            return NotebookState.RUNNING
        return NotebookState.STARTING

    def get_state_display(self) -> str:
        return str(NotebookState(self.state).label)

    def _task(self):
        if self.job is None:
            return None
        return next((task for task in self.job.tasks.all() if task.name == NOTEBOOK_TASK), None)

    @property
    def endpoint_address(self) -> str:
        """host:port of the running server, from the job's task (prefetched by the selectors)."""
        task = self._task()
        if task is None or task.state != "running":
            return ""
        return (task.endpoints or {}).get(self.endpoint_name, "")

    @property
    def endpoint_ready(self) -> bool:
        """Its server answered the readiness check that the sync pass makes (recorded on the task)."""
        task = self._task()
        return task is not None and bool(task.ready_address(self.endpoint_name))

    @property
    def path(self) -> str:
        """The notebook's page through the portal's proxy ("" without a run)."""
        if self.job is None:
            return ""
        base = endpoint_path(self.job.public_id, NOTEBOOK_TASK, self.endpoint_name)
        return base + "lab" if self.kind == self.Kind.JUPYTERLAB else base


class TensorBoard(models.Model):
    """A TensorBoard job over the summaries of one or more jobs; reused while it runs for the same jobs."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="tensorboards")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tensorboards")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="tensorboards")
    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="tensorboard")
    sources = models.ManyToManyField("jobs.Job", related_name="tensorboards", verbose_name=_("jobs"))
    # The sorted public ids of the sources: "is one already running for these jobs?" in one indexed lookup.
    sources_key = models.CharField(max_length=500, db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("TensorBoard")
        verbose_name_plural = _("TensorBoards")

    def __str__(self) -> str:
        return f"TensorBoard {self.job.public_id} ({self.sources_key})"

    @property
    def path(self) -> str:
        return endpoint_path(self.job.public_id, TENSORBOARD_TASK, "tensorboard")

    @property
    def ready(self) -> bool:
        """It runs and its server answered its readiness check: it can be opened now (tasks prefetched)."""
        if self.job.state != JobState.RUNNING:
            return False
        task = next((t for t in self.job.tasks.all() if t.name == TENSORBOARD_TASK), None)
        return task is not None and bool(task.ready_address("tensorboard"))
