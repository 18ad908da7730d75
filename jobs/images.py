"""A spec's images against the registered ones (``assets``): the framework's default filled in, and a cluster
that runs registered images only (``Cluster.settings["registered_images_only"]: true``) refusing any other.

Called from ``services._resolve``; the image a job ran stays in its stored spec (the default included), so the
job page, a rerun and the audit all read it from there.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from assets import images as registry
from clusters.models import Cluster
from teams.models import Team


def restricted(cluster: Cluster | None) -> bool:
    return (
        cluster is not None
        and isinstance(cluster.settings, dict)
        and cluster.settings.get("registered_images_only") is True
    )


def resolve(team: Team | None, cluster: Cluster | None, spec: dict) -> dict[str, list[str]]:
    """Fill in the framework's default image where the spec names none (in ``spec``, which is stored); return
    field path -> errors for each image a restricted cluster does not run."""
    roles = spec.get("roles") or {}
    needs_default = not spec.get("image") and any(not role.get("image") for role in roles.values())
    if not needs_default and not restricted(cluster):
        return {}  # read nothing: a spec that names its images, on a cluster that runs any
    images = registry.registered_for(team)
    if needs_default:
        default = registry.default_for(spec.get("framework", ""), images)
        if default is not None:
            spec["image"] = default.references()[0]
    if not restricted(cluster):
        return {}
    errors: dict[str, list[str]] = {}
    refused = _("The cluster %(cluster)s runs registered images only; %(image)s is not one of them.")
    if spec.get("image") and not registry.is_registered(spec["image"], images):
        errors["image"] = [refused % {"cluster": cluster.name, "image": spec["image"]}]
    for name, role in roles.items():
        if role.get("image") and not registry.is_registered(role["image"], images):
            errors[f"roles.{name}.image"] = [refused % {"cluster": cluster.name, "image": role["image"]}]
        elif not role.get("image") and not spec.get("image") and "image" not in errors:
            errors["image"] = [
                _("The cluster %(cluster)s runs registered images only: name one (no default is registered for %(f)s).")
                % {"cluster": cluster.name, "f": spec.get("framework", "")}
            ]
    return errors
