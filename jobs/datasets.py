"""A spec's ``datasets: [name@version, ...]`` against the job's team: which versions exist, and where each lies.

The versions themselves are made and deleted in ``files.datasets`` (level 3); the jobs app only reads them
(``assets`` is below it), so a submit names a dataset of its own team or is refused with the field's path.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from assets.models import DatasetVersion
from clusters.backends.contract import storage


def split(ref: str) -> tuple[str, int]:
    """``"imagenet@3"`` -> ``("imagenet", 3)`` (the spec has checked its shape)."""
    name, version = ref.split("@", 1)
    return name, int(version)


def problems(team, refs: list[str]) -> dict[str, list[str]]:
    """Field path -> errors for each ``name@version`` that is not a version of one of the team's datasets."""
    wanted = [split(ref) for ref in refs]
    found = set(
        DatasetVersion.objects.filter(dataset__team=team, dataset__name__in={name for name, _v in wanted}).values_list(
            "dataset__name", "version"
        )
    )
    return {
        f"datasets.{i}": [_("No dataset %(ref)s in the team %(team)s.") % {"ref": ref, "team": team.slug}]
        for i, (ref, key) in enumerate(zip(refs, wanted, strict=True))
        if key not in found
    }


def mounts(team_slug: str, refs: list[str] | None) -> dict[str, str]:
    """name -> "{team}/{name}/{version}" for ``storage.places(datasets=...)``."""
    result = {}
    for ref in refs or []:
        name, version = split(ref)
        result[name] = storage.dataset_dir(team_slug, name, version).removeprefix("datasets/")
    return result


def refs_in_use(spec: dict) -> set[tuple[str, int]]:
    """(name, version) of each dataset a job's spec mounts."""
    return {split(ref) for ref in (spec or {}).get("datasets") or [] if storage.DATASET_REF.fullmatch(str(ref))}
