"""Assets a platform manages besides code: container images to pick from, and datasets (named, versioned,
team-visible folders of data that jobs mount read-only).

A level-1 app (it imports only ``teams``): the jobs app reads it when it validates a spec (a registered image, a
dataset's version), and ``files`` makes and deletes datasets (from an upload, a data folder or a job's output).

- ``Image``: registered by a platform admin (``team`` empty: every team's) or a team admin (their team's): a
  name (``registry/path``), its tags, what it suits (frameworks, GPU or CPU), and whether it is the default
  image of a framework. A cluster whose settings say ``registered_images_only: true`` runs only these.
- ``Dataset`` and ``DatasetVersion``: ``name@version`` in a spec mounts the version's folder read-only in every
  task, at ``/datasets/{name}`` with ``$EASYAI_DATASET_{NAME}``; it lies at ``datasets/{team}/{name}/{version}``
  under the storage root (``clusters.backends.contract.storage`` is where jobs and backends read that layout).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Accelerator(models.TextChoices):
    CPU = "cpu", _("CPU")
    GPU = "gpu", _("GPU")


class Image(models.Model):
    team = models.ForeignKey(
        "teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="images",
        help_text=_("Empty: every team's (a platform admin's registration)."),
    )  # fmt: skip
    name = models.CharField(_("name"), max_length=255, help_text=_("Without a tag, e.g. pytorch/pytorch."))
    tags = models.JSONField(
        _("tags"), default=list, help_text=_("The tags it may be used with; the first is its default.")
    )
    description = models.TextField(_("description"), blank=True)
    frameworks = models.JSONField(_("frameworks"), default=list, blank=True, help_text=_("The frameworks it suits."))
    accelerator = models.CharField(_("accelerator"), max_length=3, choices=Accelerator.choices, default=Accelerator.CPU)
    default_for = models.JSONField(
        _("default for"), default=list, blank=True,
        help_text=_("Frameworks whose jobs get this image (its first tag) when their spec names none."),
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("image")
        verbose_name_plural = _("images")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="image_name_unique_in_team")]

    def __str__(self) -> str:
        return self.name

    def references(self) -> list[str]:
        """Every ``name:tag`` it may be used as."""
        return [f"{self.name}:{tag}" for tag in self.tags or []]


class Dataset(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="datasets")
    name = models.SlugField(_("name"), max_length=63)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["team", "name"]
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="dataset_name_unique_in_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class DatasetSource(models.TextChoices):
    UPLOAD = "upload", _("upload")
    DATA = "data", _("data folder")
    JOB = "job", _("job output")


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField(_("version"))
    description = models.TextField(_("description"), blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size"), default=0)
    file_count = models.PositiveIntegerField(_("files"), default=0)
    digest = models.CharField(_("digest"), max_length=64, blank=True)  # sha256 over paths and contents
    source = models.CharField(_("made from"), max_length=10, choices=DatasetSource.choices)
    source_ref = models.CharField(_("source"), max_length=500, blank=True)  # "j-…/model_dir/x", "data:/path", upload id
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-version"]
        verbose_name = _("dataset version")
        verbose_name_plural = _("dataset versions")
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}@{self.version}"
