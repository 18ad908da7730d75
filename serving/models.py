"""The model registry (models, versions, aliases, pull tokens) and inference services with their revisions.

A version is immutable: its files are copied into the registry's store (``serving/store.py``) under
``models/{team}/{model}/{version}/`` when it is registered, so no job's cleanup can break it. A service
serves one version (fixed, or the one an alias points at) and, optionally, a canary: a second version with a
share of the traffic. Every start of a version for a service is a ``Revision``: on the local backend a
single-task job running the model server, on Kubernetes a revision of the KServe InferenceService. A revision
takes traffic only once it answered its readiness check; the service's own fields say which revisions serve.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters.backends.base import MODEL_FORMATS
from endpoints import origin as endpoint_origin

FORMAT_LABELS = {
    "pytorch": "PyTorch",
    "torchscript": "TorchScript",
    "onnx": "ONNX",
    "sklearn": "scikit-learn",
    "xgboost": "XGBoost",
    "tensorflow": "TensorFlow",
    "huggingface": "Hugging Face",
    "custom": _("custom"),
}
FORMAT_CHOICES = [(name, FORMAT_LABELS[name]) for name in MODEL_FORMATS]


class RegisteredModel(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="registered_models")
    name = models.CharField(_("name"), max_length=63)
    description = models.TextField(_("description"), blank=True)
    tags = models.JSONField(_("tags"), default=dict, blank=True)  # name -> value, as MLflow's
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="registered_models", verbose_name=_("owner")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["team__slug", "name"]
        verbose_name = _("registered model")
        verbose_name_plural = _("registered models")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="model_name_unique_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    format = models.CharField(_("format"), max_length=20, choices=FORMAT_CHOICES)
    description = models.TextField(_("description"), blank=True)
    # [{"path": "model.joblib", "size": 1234, "sha256": "…"}], sorted by path.
    files = models.JSONField(_("files"), default=list)
    digest = models.CharField(_("digest"), max_length=64)  # sha256 over the sorted "path sha256" lines
    size = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    # Lineage: the job it came from (kept by its public id when the job row is gone) and, copied at
    # registration, what produced it: the spec's image and command, the experiment, the pre_job chain.
    source_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("source job")
    )
    source_job_public_id = models.CharField(_("source job id"), max_length=10, blank=True)
    source_path = models.CharField(_("source path"), max_length=1024, blank=True)
    lineage = models.JSONField(_("lineage"), default=dict, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("registered by")
    )
    created_at = models.DateTimeField(_("registered"), auto_now_add=True)

    class Meta:
        ordering = ["model", "-number"]
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="version_number_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model}/{self.number}"

    @property
    def prefix(self) -> str:
        """Its files' key prefix in the store."""
        return f"models/{self.model.team.slug}/{self.model.name}/{self.number}"

    @staticmethod
    def digest_of(files: list[dict]) -> str:
        lines = "".join(f"{f['path']} {f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
        return hashlib.sha256(lines.encode()).hexdigest()


class ModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(_("alias"), max_length=63)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(_("moved"), auto_now=True)

    class Meta:
        ordering = ["model", "name"]
        verbose_name = _("model alias")
        verbose_name_plural = _("model aliases")
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model}@{self.name}"


class AliasMove(models.Model):
    """Every move of an alias: who, when, from which version to which (None: set first, or removed)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_moves")
    alias = models.CharField(_("alias"), max_length=63)
    from_number = models.PositiveIntegerField(_("from version"), null=True, blank=True)
    to_number = models.PositiveIntegerField(_("to version"), null=True, blank=True)
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("moved by")
    )
    moved_at = models.DateTimeField(_("moved"), auto_now_add=True)

    class Meta:
        ordering = ["-moved_at", "-id"]
        verbose_name = _("alias move")
        verbose_name_plural = _("alias moves")


class PullToken(models.Model):
    """A read-only credential for one team's registered models: for serving pods and outside CI.

    Only its SHA-256 is kept; the token itself is shown once, when it is made.
    """

    PREFIX = "eam_"

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="pull_tokens")
    name = models.CharField(_("name"), max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(_("begins with"), max_length=12, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["team__slug", "-created_at"]
        verbose_name = _("model pull token")
        verbose_name_plural = _("model pull tokens")

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name} ({self.hint}…)"

    @staticmethod
    def hash_of(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


def serving_origin() -> str:
    """Where services answer: the endpoint origin (under a wildcard origin, its host ``serving.…``)."""
    where = endpoint_origin.origin()
    host = f"serving.{where.host}" if where.wildcard else where.host
    host = f"[{host}]" if ":" in host else host
    return f"{where.scheme}://{host}{f':{where.port}' if where.port else ''}"


class ServiceState(models.TextChoices):
    STARTING = "starting", _("starting")  # no revision answers yet
    READY = "ready", _("ready")  # a revision serves
    UPDATING = "updating", _("updating")  # serving, and a new revision is starting
    FAILED = "failed", _("failed")  # no revision serves, and the last one failed to load


class InferenceService(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="inference_services")
    name = models.CharField(_("name"), max_length=45)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="inference_services")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="services")
    # What to serve: a fixed version, or the version an alias points at (followed when it moves).
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("version")
    )
    alias = models.CharField(_("alias followed"), max_length=63, blank=True)
    canary_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("canary version")
    )
    canary_percent = models.PositiveSmallIntegerField(_("canary traffic (%)"), default=0)
    cpu = models.CharField(_("CPU"), max_length=32, default="1")
    memory = models.CharField(_("memory"), max_length=32, default="2Gi")
    gpu = models.PositiveIntegerField(_("GPUs"), default=0)
    min_replicas = models.PositiveSmallIntegerField(_("min replicas"), default=1)
    max_replicas = models.PositiveSmallIntegerField(_("max replicas"), default=1)
    public = models.BooleanField(
        _("public"), default=False, help_text=_("Anyone may call it, without a token. Team admins set this.")
    )
    # Which revisions serve now (set by the sync pass from what answered): the primary takes the traffic the
    # canary does not; the next one is starting to replace the primary.
    primary = models.ForeignKey(
        "Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("serving")
    )
    canary = models.ForeignKey(
        "Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("canary")
    )
    next = models.ForeignKey(
        "Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("starting")
    )
    message = models.TextField(_("message"), blank=True)  # why the last revision failed, and what serves instead
    cluster_url = models.CharField(_("cluster URL"), max_length=500, blank=True)  # KServe's status.url on Kubernetes
    address = models.CharField(_("address"), max_length=500, blank=True)  # where the proxy reaches it (Kubernetes)
    grpc_address = models.CharField(_("gRPC address"), max_length=500, blank=True)  # KServe's gRPC route
    requests = models.PositiveBigIntegerField(_("requests"), default=0)
    errors = models.PositiveBigIntegerField(_("errors"), default=0)
    latency_ms_total = models.FloatField(_("latency total (ms)"), default=0)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="inference_services", verbose_name=_("owner")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "name"]
        verbose_name = _("inference service")
        verbose_name_plural = _("inference services")
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="service_name_unique_per_team"),
            models.CheckConstraint(condition=models.Q(canary_percent__lte=100), name="canary_percent_at_most_100"),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def path(self) -> str:
        return f"/serving/{self.team.slug}/{self.name}/"

    @property
    def url(self) -> str:
        return serving_origin() + self.path

    @property
    def state(self) -> str:
        if self.primary_id:
            return ServiceState.UPDATING if self.next_id else ServiceState.READY
        if self.next_id:
            return ServiceState.STARTING
        return ServiceState.FAILED

    def get_state_display(self) -> str:
        return str(ServiceState(self.state).label)

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_total / self.requests if self.requests else None


class RevisionState(models.TextChoices):
    STARTING = "starting", _("starting")
    READY = "ready", _("ready")  # answered its readiness check
    FAILED = "failed", _("failed")  # never became ready: it took no traffic
    RETIRED = "retired", _("retired")  # replaced, rolled back or stopped after it served


class Revision(models.Model):
    service = models.ForeignKey(InferenceService, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField(_("revision"))
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="revisions")
    state = models.CharField(_("state"), max_length=20, choices=RevisionState.choices, default=RevisionState.STARTING)
    # Locally: the single-task job running the model server. On Kubernetes: KServe's revision name.
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cluster_revision = models.CharField(_("cluster revision"), max_length=200, blank=True)
    message = models.TextField(_("message"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    ready_at = models.DateTimeField(_("ready"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        ordering = ["service", "-number"]
        verbose_name = _("revision")
        verbose_name_plural = _("revisions")
        constraints = [models.UniqueConstraint(fields=["service", "number"], name="revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.service}#{self.number}"
