"""Registered images: who sees and who changes them, their writes, and how a job's image is matched against them.

- A platform admin's image (``team`` empty) is every team's: everyone signed in sees it, platform admins change it.
- A team's image is seen by the team's members and changed by its admins (and platform admins); everyone
  else gets a 404, as for every object of a team.

The jobs app asks ``registered_for`` and ``default_for`` when it resolves a spec (``jobs/images.py``); pages,
the API and the admin call ``image_register``, ``image_update`` and ``image_delete``.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from assets.models import Accelerator, Image
from teams import permissions
from teams.models import Team

# The frameworks an image may suit: the jobs app's (jobs.spec.Framework, above this app; a test keeps them equal).
FRAMEWORKS = (
    "pytorch", "tensorflow", "mpi", "xgboost", "paddle", "batch", "notebook", "tensorboard", "serving", "app",
)  # fmt: skip
# registry[:port]/path, lowercase as Docker wants it; a tag is letters, digits, '_', '.', '-' (at most 128).
_NAME = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*", re.ASCII)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
EDITABLE = ("name", "tags", "description", "frameworks", "accelerator", "default_for")


def split_reference(reference: str) -> tuple[str, str]:
    """``"pytorch/pytorch:2.5"`` -> ``("pytorch/pytorch", "2.5")``; no tag (or a digest) -> the rest as it is."""
    if "@" in reference:
        return reference, ""
    head, colon, tag = reference.rpartition(":")
    if colon and "/" not in tag:
        return head, tag
    return reference, ""


# --- reads -----------------------------------------------------------------------------


def images_visible(user) -> QuerySet[Image]:
    """The platform's images and those of the user's teams."""
    if permissions.is_platform_admin(user):
        return Image.objects.all()
    if not (user is not None and user.is_authenticated and user.is_active):
        return Image.objects.none()
    return Image.objects.filter(Q(team__isnull=True) | Q(team__in=permissions.visible_teams(user)))


def can_change(user, image: Image) -> bool:
    """Platform admins change every image; a team admin the team's own."""
    if permissions.is_platform_admin(user):
        return True
    return image.team_id is not None and permissions.can_admin_team(user, image.team)


def image_get(user, pk: int, *, change: bool = False) -> Image:
    """One image: 404 when the user may not see it, 403 when seen but not theirs to change."""
    image = images_visible(user).select_related("team").filter(pk=pk).first()
    if image is None:
        raise Http404(_("Not found."))
    if change and not can_change(user, image):
        raise PermissionDenied(_("Only a platform admin, or an admin of the image's team, may change it."))
    return image


def registered_for(team: Team | None) -> list[Image]:
    """The images a job of this team may run where a cluster runs registered images only: the team's own first."""
    found = Image.objects.filter(Q(team__isnull=True) | Q(team=team) if team is not None else Q(team__isnull=True))
    return sorted(found, key=lambda image: (image.team_id is None, image.name))


def is_registered(reference: str, images: list[Image]) -> bool:
    """Whether ``name:tag`` is one of these images with one of its tags (no tag: ``latest`` must be listed)."""
    name, tag = split_reference(reference)
    tag = tag or ("latest" if "@" not in reference else "")
    return any(image.name == name and tag in (image.tags or []) for image in images)


def default_for(framework: str, images: list[Image]) -> Image | None:
    """The framework's default image among these (the team's own before the platform's), or None."""
    return next((image for image in images if framework in (image.default_for or []) and image.tags), None)


# --- writes ----------------------------------------------------------------------------


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """The editable fields checked and normalised; ValidationError naming each wrong field."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    if "name" in values:
        name = values["name"].strip() if isinstance(values["name"], str) else ""
        if not name or len(name) > 255 or not _NAME.fullmatch(name):
            errors["name"] = [_("An image name without its tag, such as pytorch/pytorch or registry:5000/team/train.")]
        cleaned["name"] = name
    if "tags" in values:
        tags = values["tags"]
        if isinstance(tags, str):
            tags = [tag for tag in re.split(r"[\s,]+", tags) if tag]
        if not isinstance(tags, list) or not tags or len(tags) > 100:
            errors["tags"] = [_("One tag or more (at most 100); the first is the default.")]
        elif bad := [t for t in tags if not (isinstance(t, str) and _TAG.fullmatch(t))]:
            errors["tags"] = [_("Not a tag: %(tags)s.") % {"tags": ", ".join(map(str, bad[:5]))}]
        elif len(set(tags)) != len(tags):
            errors["tags"] = [_("A tag is listed twice.")]
        cleaned["tags"] = tags
    for field in ("frameworks", "default_for"):
        if field in values:
            items = values[field]
            if isinstance(items, str):
                items = [item for item in re.split(r"[\s,]+", items) if item]
            if not isinstance(items, list) or [f for f in items if f not in FRAMEWORKS]:
                errors[field] = [_("Frameworks among: %(names)s.") % {"names": ", ".join(FRAMEWORKS)}]
            cleaned[field] = list(dict.fromkeys(items)) if isinstance(items, list) else []
    if "accelerator" in values:
        if values["accelerator"] not in Accelerator.values:
            errors["accelerator"] = [_("cpu or gpu.")]
        cleaned["accelerator"] = values["accelerator"]
    if "description" in values:
        if not isinstance(values["description"], str) or len(values["description"]) > 5000:
            errors["description"] = [_("Text of at most 5000 characters.")]
        cleaned["description"] = values["description"]
    if errors:
        raise ValidationError(errors)
    return cleaned


def _check_default(image: Image) -> None:
    """A framework has one default per place (the platform, or a team): another one is named, not replaced."""
    for framework in image.default_for or []:
        if framework not in (image.frameworks or []):
            raise ValidationError({"default_for": [_("%(f)s is not among the image's frameworks.") % {"f": framework}]})
        others = Image.objects.filter(team_id=image.team_id).exclude(pk=image.pk)
        clash = next((other for other in others if framework in (other.default_for or [])), None)
        if clash is not None:
            raise ValidationError(
                {
                    "default_for": [
                        _("%(other)s is already the default for %(f)s.") % {"other": clash.name, "f": framework}
                    ]
                }
            )


def _save(image: Image) -> Image:
    _check_default(image)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        raise ValidationError({"name": [_("There is already an image named %(name)s here.") % {"name": image.name}]})
    return image


@transaction.atomic
def image_register(*, user, team: Team | None, **values: Any) -> Image:
    """Register an image: for the platform (``team`` None, platform admins) or a team (its admins)."""
    if team is None and not permissions.is_platform_admin(user):
        raise PermissionDenied(_("Only platform admins register images for every team."))
    if team is not None and not permissions.can_admin_team(user, team):
        raise PermissionDenied(_("Only the team's admins register its images."))
    cleaned = _clean({"description": "", "frameworks": [], "default_for": [], "accelerator": "cpu", **values})
    for required in ("name", "tags"):
        if required not in values:
            raise ValidationError({required: [_("This field is required.")]})
    return _save(Image(team=team, created_by=user if user.is_authenticated else None, **cleaned))


@transaction.atomic
def image_update(*, user, image: Image, **values: Any) -> Image:
    """Change an image's fields (its team stays)."""
    if not can_change(user, image):
        raise PermissionDenied(_("Only a platform admin, or an admin of the image's team, may change it."))
    for field, value in _clean({k: v for k, v in values.items() if k in EDITABLE}).items():
        setattr(image, field, value)
    return _save(image)


@transaction.atomic
def image_delete(*, user, image: Image) -> None:
    """Unregister an image; jobs that ran it keep it in their specs."""
    if not can_change(user, image):
        raise PermissionDenied(_("Only a platform admin, or an admin of the image's team, may change it."))
    image.delete()
