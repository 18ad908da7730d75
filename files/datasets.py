"""Datasets: named, versioned, team-visible folders of data that jobs mount read-only (``datasets: [name@version]``).

A version is a copy, made once and never changed, at ``datasets/{team}/{name}/{version}`` under the storage root
(``clusters.backends.contract.storage.dataset_dir``), of one of:

- a folder of the maker's data space (``data:PATH``),
- a folder of a job's output they may see (``j-…/model_dir/sub`` or ``…/share_dir/…``),
- an uploaded zip archive.

The copy refuses links (``files.folders``), counts sizes as it goes, and records the file count, the size and a
sha256 digest over every file's path and contents. Team-mates see a dataset; its owner or a team admin adds
versions and deletes them; a version an active job mounts cannot be deleted. Reads and writes of the faces
(pages, API) both come through here.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Prefetch, QuerySet
from django.utils.translation import gettext as _

from assets.models import Dataset, DatasetSource, DatasetVersion
from clusters.backends.contract import storage
from files import folders
from files.paths import PathRefused, parts_of, safe_join
from jobs import datasets as job_datasets
from jobs.models import Job
from jobs.state import ACTIVE
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team


class DatasetInUse(ActionRefused):
    """A version an active job mounts: deleting it would pull the data from under the job. Faces answer 409."""


# --- reads --------------------------------------------------------------------------------------------------------


def datasets_visible(user) -> QuerySet[Dataset]:
    """The datasets of the user's teams (every one for a platform admin), with their version count."""
    queryset = Dataset.objects.select_related("team", "owner").annotate(
        version_count=Count("versions"), latest_version=Max("versions__version")
    )
    return permissions.restrict(queryset, user)


def dataset_detail(user, team: str, name: str) -> Dataset | None:
    """A dataset the user may see, its versions read with it (one query more)."""
    return (
        datasets_visible(user)
        .filter(team__slug=team, name=name)
        .prefetch_related(
            Prefetch("versions", DatasetVersion.objects.select_related("created_by").order_by("-version"))
        )
        .first()
    )


def version_dir(version: DatasetVersion) -> Path:
    dataset = version.dataset
    return _root() / storage.dataset_dir(dataset.team.slug, dataset.name, version.version)


def jobs_using(dataset: Dataset, version: int | None = None) -> list[str]:
    """Public ids of the team's active jobs that mount the dataset (any version, or only this one)."""
    result = []
    rows = Job.objects.filter(team_id=dataset.team_id, state__in=ACTIVE).values_list("public_id", "spec")
    for public_id, spec in rows.order_by("created_at"):
        for name, number in job_datasets.refs_in_use(spec):
            if name == dataset.name and (version is None or number == version):
                result.append(public_id)
                break
    return result


# --- making a version ---------------------------------------------------------------------------------------------


@dataclass
class _Source:
    kind: str  # DatasetSource
    ref: str  # what the version records it was made from
    folder: Path | None = None
    archive: IO[bytes] | None = None


def _root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def _data_source(user, path: str) -> _Source:
    relative = path.strip().removeprefix("data:").strip("/")
    data = _root() / "data" / user.username
    try:
        folder = safe_join(data, relative)  # a link in the data space may not lead out of it
    except PathRefused as exc:
        raise ValidationError({"data_path": [str(exc)]}) from None
    if not folder.is_dir():
        raise ValidationError(
            {"data_path": [_("There is no folder %(path)s in your data.") % {"path": relative or "/"}]}
        )
    return _Source(DatasetSource.DATA, f"data:{relative}", folder=folder)


def _job_source(user, ref: str) -> _Source:
    ref = ref.strip().strip("/")
    if not storage.INPUT_SOURCE.fullmatch(ref):
        raise ValidationError(
            {"job_output": [_("A folder of a job's model_dir or share_dir, such as j-3k9x2m4q/model_dir/data.")]}
        )
    job_id, *rest = ref.split("/")
    job = permissions.restrict(Job.objects.all(), user).filter(public_id=job_id).first()
    if job is None:
        raise ValidationError({"job_output": [_("No job %(job)s that you can see.") % {"job": job_id}]})
    try:
        parts = parts_of("/".join(rest[1:]))
        # A job owns its folders: a link on the way down could lead anywhere on the portal's host.
        folder = folders.no_link_below(storage.output_dir(_root(), job.public_id, rest[0]), parts)
    except (PathRefused, folders.FolderRefused) as exc:
        raise ValidationError({"job_output": [str(exc)]}) from None
    return _Source(DatasetSource.JOB, ref, folder=folder)


def _source(user, *, data_path: str | None, job_output: str | None, archive: IO[bytes] | None, archive_name: str):
    given = [value for value in (data_path, job_output, archive) if value not in (None, "")]
    if len(given) != 1:
        raise ValidationError(
            {"source": [_("Give exactly one of: a folder of your data, a job's output folder, or a zip archive.")]}
        )
    if archive is not None:
        return _Source(DatasetSource.UPLOAD, (archive_name or "archive.zip")[:500], archive=archive)
    if data_path not in (None, ""):
        return _data_source(user, data_path)
    return _job_source(user, job_output or "")


def _stage(source: _Source, staging: Path) -> list[dict]:
    """The source's files copied (or unpacked) into ``staging``: {"path", "size", "sha256"} each, sorted."""
    max_bytes = int(settings.EASYAI_DATASET_MAX_BYTES)
    max_files = int(settings.EASYAI_DATASET_MAX_FILES)
    field = {"upload": "archive", "data": "data_path", "job": "job_output"}[source.kind]
    try:
        if source.archive is not None:
            staging.mkdir(parents=True)
            folders.unzip_into(source.archive, staging, max_files=max_files, max_bytes=max_bytes)
            entries = []
            for relative, path in folders.walk(staging, max_files=max_files):
                size, digest = folders.sha256_of(path)
                entries.append({"path": relative, "size": size, "sha256": digest})
            return entries
        assert source.folder is not None
        return folders.copy_folder(source.folder, staging, max_files=max_files, max_bytes=max_bytes)
    except folders.FolderRefused as exc:
        raise ValidationError({field: [str(exc)]}) from None


def digest_of(entries: list[dict]) -> str:
    """sha256 over every file's path and contents' sha256, in path order: equal for equal folders."""
    total = hashlib.sha256()
    for item in entries:
        total.update(f"{item['path']}\0{item['sha256']}\n".encode())
    return total.hexdigest()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 63 or not storage.DATASET_NAME.fullmatch(name):
        raise ValidationError(
            {"name": [_("Lowercase letters, digits and '-', starting and ending with a letter or digit (at most 63).")]}
        )
    return name


def dataset_version_create(
    *,
    user,
    team: Team,
    name: str,
    description: str = "",
    data_path: str | None = None,
    job_output: str | None = None,
    archive: IO[bytes] | None = None,
    archive_name: str = "",
) -> DatasetVersion:
    """Copy a data folder, a job's output folder or a zip archive into the team's dataset as its next version
    (the dataset is made on first use)."""
    name = _check_name(name)
    if not permissions.can_use_team(user, team):
        raise ValidationError({"team": [_("No team %(team)r that you belong to.") % {"team": team.slug}]})
    existing = Dataset.objects.filter(team=team, name=name).first()
    if existing is not None and not permissions.can(user, existing, permissions.Action.CHANGE):
        raise PermissionDenied(_("Only the dataset's owner or a team admin may add a version."))
    source = _source(user, data_path=data_path, job_output=job_output, archive=archive, archive_name=archive_name)
    home = _root() / "datasets" / team.slug / name
    staging = home / f".staging-{uuid.uuid4().hex}"
    try:
        entries = _stage(source, staging)
        if not entries:
            raise ValidationError({_field(source): [_("The folder is empty: a dataset needs at least one file.")]})
        with transaction.atomic():
            dataset, _created = _dataset_for(user, team, name, description)
            # The dataset row is locked (on databases that lock) while the next number is taken.
            number = (dataset.versions.aggregate(n=Max("version"))["n"] or 0) + 1
            version = DatasetVersion.objects.create(
                dataset=dataset,
                version=number,
                description=description or "",
                size_bytes=sum(item["size"] for item in entries),
                file_count=len(entries),
                digest=digest_of(entries),
                source=source.kind,
                source_ref=source.ref,
                created_by=user,
            )
            target = home / str(number)
            if target.exists():  # left by a version deleted while a reader held it: never mixed with the new one
                shutil.rmtree(target)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version


def _field(source: _Source) -> str:
    return {"upload": "archive", "data": "data_path", "job": "job_output"}[source.kind]


def _dataset_for(user, team: Team, name: str, description: str) -> tuple[Dataset, bool]:
    dataset = Dataset.objects.select_for_update().filter(team=team, name=name).first()
    if dataset is not None:
        return dataset, False
    try:
        with transaction.atomic():
            return Dataset.objects.create(team=team, name=name, owner=user, description=description or ""), True
    except IntegrityError:  # made by another request just now
        return Dataset.objects.select_for_update().get(team=team, name=name), False


# --- deleting -----------------------------------------------------------------------------------------------------


def _check_change(user, dataset: Dataset) -> None:
    if not permissions.can(user, dataset, permissions.Action.CHANGE):
        raise PermissionDenied(_("Only the dataset's owner or a team admin may delete it."))


def _refuse_in_use(dataset: Dataset, version: int | None) -> None:
    using = jobs_using(dataset, version)
    if using:
        what = f"{dataset.name}@{version}" if version is not None else dataset.name
        raise DatasetInUse(
            _("%(dataset)s is in use by active jobs (%(jobs)s): stop them or wait until they end.")
            % {"dataset": what, "jobs": ", ".join(using)}
        )


@transaction.atomic
def dataset_version_delete(*, user, version: DatasetVersion) -> None:
    """Delete one version and its files (the dataset too when it was its last); refused while an active job
    mounts it."""
    dataset = Dataset.objects.select_for_update().select_related("team").get(pk=version.dataset_id)
    _check_change(user, dataset)
    _refuse_in_use(dataset, version.version)
    folder = _root() / storage.dataset_dir(dataset.team.slug, dataset.name, version.version)
    DatasetVersion.objects.filter(pk=version.pk).delete()
    if not dataset.versions.exists():
        dataset.delete()
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


@transaction.atomic
def dataset_delete(*, user, dataset: Dataset) -> None:
    """Delete a dataset with every version and their files; refused while an active job mounts any of them."""
    dataset = Dataset.objects.select_for_update().select_related("team").get(pk=dataset.pk)
    _check_change(user, dataset)
    _refuse_in_use(dataset, None)
    folder = _root() / "datasets" / dataset.team.slug / dataset.name
    dataset.versions.all().delete()
    dataset.delete()
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
