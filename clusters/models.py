"""Clusters: where jobs run. One row per local host or Kubernetes cluster, and each team's quota on it."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters import crypto


class Cluster(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", _("Local (processes on this host)")
        KUBERNETES = "kubernetes", _("Kubernetes")

    class Scheduler(models.TextChoices):
        DEFAULT = "default", _("Kubernetes default scheduler")
        VOLCANO = "volcano", _("Volcano")

    name = models.SlugField(_("name"), max_length=63, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.LOCAL)
    enabled = models.BooleanField(_("enabled"), default=True)
    is_default = models.BooleanField(_("default"), default=False, help_text=_("Jobs that name no cluster go here."))
    description = models.CharField(_("description"), max_length=200, blank=True)
    # Backend-specific settings: capacity overrides and preemption for local; anything extra for Kubernetes.
    settings = models.JSONField(_("settings"), default=dict, blank=True)

    # Kubernetes connection.
    kubeconfig_encrypted = models.TextField(_("kubeconfig (encrypted)"), blank=True, editable=False)
    in_cluster = models.BooleanField(_("use in-cluster config"), default=False)
    namespace_prefix = models.CharField(_("namespace prefix"), max_length=20, blank=True)
    nfs_server = models.CharField(_("NFS server"), max_length=200, blank=True)
    nfs_path = models.CharField(_("NFS path"), max_length=300, blank=True)
    gpu_resource_name = models.CharField(_("GPU resource name"), max_length=100, default="nvidia.com/gpu")
    scheduler = models.CharField(_("scheduler"), max_length=20, choices=Scheduler.choices, default=Scheduler.DEFAULT)
    image_pull_secrets = models.JSONField(_("image pull secrets"), default=list, blank=True)
    ingress_host = models.CharField(_("ingress host"), max_length=200, blank=True)

    # Health, written by the backend when it is refused (401/403) or answers again.
    healthy = models.BooleanField(_("healthy"), default=True)
    health_message = models.TextField(_("health message"), blank=True)
    health_checked_at = models.DateTimeField(_("health checked at"), null=True, blank=True)
    server_version = models.CharField(_("server version"), max_length=50, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_cluster"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from clusters.alert_settings import problems

        found = problems(self.settings)
        if isinstance(self.settings, dict) and not isinstance(self.settings.get("registered_images_only", False), bool):
            # jobs/images.py: true runs only the images registered for the job's team (and the platform's)
            found.append(_("registered_images_only: true or false."))
        if isinstance(self.settings, dict) and "debug_hold_max" in self.settings:
            # The longest a failed task may be held for debugging (the job spec's debug), a duration.
            from clusters.backends.contract.quantity import parse_duration

            try:
                parse_duration(self.settings["debug_hold_max"])
            except ValueError as exc:
                found.append(_("debug_hold_max: %(problem)s.") % {"problem": exc})
        tools_image = self.settings.get("tools_image") if isinstance(self.settings, dict) else None
        if tools_image is not None and (not isinstance(tools_image, str) or not tools_image.strip()):
            # The image the debug toolbox's init container copies /tools from (Kubernetes).
            found.append(_("tools_image: an image reference, such as registry.example.com/easyai/tools:1."))
        if found:
            raise ValidationError({"settings": found})

    @property
    def kubeconfig(self) -> str:
        return crypto.decrypt(self.kubeconfig_encrypted) if self.kubeconfig_encrypted else ""

    @kubeconfig.setter
    def kubeconfig(self, value: str) -> None:
        self.kubeconfig_encrypted = crypto.encrypt(value) if value else ""

    @property
    def sync_interval(self) -> float:
        """Seconds between sync passes: the cluster's own setting, else the default for its kind."""
        from django.conf import settings as django_settings

        value = self.settings.get("sync_interval") if isinstance(self.settings, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        if self.kind == self.Kind.LOCAL:
            return django_settings.EASYAI_LOCAL_SYNC_INTERVAL
        return django_settings.EASYAI_SYNC_INTERVAL

    @property
    def keep_finished(self) -> timedelta:
        """How long a finished job's backend records stay on this cluster before the cleanup deletes them.

        The ``keep_finished_minutes`` setting when it is a number of minutes (0: at once; capped at ten years);
        otherwise at once on Kubernetes and EASYAI_CLEANUP_AFTER for local process records.
        """
        from django.conf import settings as django_settings

        value = self.settings.get("keep_finished_minutes") if isinstance(self.settings, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return timedelta(minutes=min(float(value), 3650 * 24 * 60))
        if self.kind == self.Kind.KUBERNETES:
            return timedelta(0)
        return timedelta(seconds=django_settings.EASYAI_CLEANUP_AFTER)

    @property
    def isolation_problem(self) -> str:
        """Local clusters: why their tasks are not isolated from the portal and each other ("" when they are)."""
        if self.kind != self.Kind.LOCAL:
            return ""
        from clusters.backends.base import BackendError

        try:
            backend = self.backend()
            check = getattr(backend, "isolation_problem", None)
            return check() if check else ""
        except BackendError:
            return ""  # a bad setting: the cluster's health says so

    @property
    def unisolated_for_everyone(self) -> bool:
        """An operator lets everyone run jobs here even though its tasks are not isolated (allow_unisolated)."""
        from clusters.backends.local.resources import ISOLATION_DEFAULTS

        if not isinstance(self.settings, dict):
            return False
        return self.settings.get("allow_unisolated", ISOLATION_DEFAULTS["allow_unisolated"]) is True

    def backend(self):
        """The backend object that acts on this cluster."""
        from clusters.backends import get_backend

        return get_backend(self)


class Quota(models.Model):
    """What one team may use at once on one cluster. Zero means none of it; no row means no limit.

    It lives above teams (a team knows no cluster): the table keeps its first name, teams_quota.
    """

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="quotas")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="quotas")
    cpu_milli = models.PositiveBigIntegerField(_("CPU (millicores)"), default=0)
    memory_bytes = models.PositiveBigIntegerField(_("memory (bytes)"), default=0)
    gpu = models.PositiveIntegerField(_("GPUs"), default=0)

    class Meta:
        db_table = "teams_quota"
        ordering = ["team", "cluster"]
        verbose_name = _("quota")
        verbose_name_plural = _("quotas")
        constraints = [models.UniqueConstraint(fields=["team", "cluster"], name="one_quota_per_team_cluster")]

    def __str__(self) -> str:
        return f"{self.team} on {self.cluster}"
