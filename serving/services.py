"""Functions that change the model registry and inference services. Pages, API, CLI and admin all call these.

Bad input raises ``ValidationError`` naming the field, and changes nothing; a refused action raises a
subclass of ``ActionRefused`` (409). A version's files are copied into the store before its row is written:
if the copy fails, nothing is recorded and the copied files are removed.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.backends.contract import storage
from clusters.backends.contract.quantity import parse_cpu, parse_memory, whole_number
from clusters.models import Cluster
from files import folders
from files.paths import PathRefused, parts_of
from jobs.models import Job
from serving import formats, runtime
from serving.models import (
    AliasMove,
    InferenceService,
    ModelAlias,
    ModelVersion,
    PullToken,
    RegisteredModel,
    Revision,
)
from serving.runtime import target_version
from serving.store import model_store
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)  # DNS-1123 label
NAME_MESSAGE = gettext_noop(
    "Lowercase letters, digits and '-', starting and ending with a letter or digit, at most %(max)s."
)
MAX_TAGS = 50
MAX_METRICS = 200
MAX_REPLICAS = 100
PUSH_MAX_BYTES = 10 * 2**30


class ServingActionRefused(ActionRefused):
    """An action the registry or the service's state does not allow (deleting a version in use). 409."""


def _name_problem(value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not value:
        return _("This field is required.")
    if len(value) > max_len or not _NAME.fullmatch(value):
        return _(NAME_MESSAGE) % {"max": max_len}
    return ""


def _member_team(user, team: Team | None) -> Team:
    if team is None or not permissions.can_use_team(user, team):
        raise ValidationError({"team": [_("No team that you belong to: name one, or ask a team admin to add you.")]})
    return team


def _must(user, obj, action=permissions.Action.CHANGE) -> None:
    if not permissions.can(user, obj, action):
        raise ServingActionRefused(_("Only the owner or a team admin may do this."))


def _tags(value: Any, errors: dict) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > MAX_TAGS:
        errors["tags"] = [_("A mapping of at most %(max)s names to text values.") % {"max": MAX_TAGS}]
        return {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 100 or not isinstance(item, str | int | float | bool):
            errors["tags"] = [_("Each tag is a name (at most 100 characters) and a text value.")]
            return {}
    return {key: str(item)[:500] for key, item in value.items()}


def _metrics(value: Any, errors: dict, field: str = "metrics") -> dict[str, float]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            errors[field] = [_("Metrics are a JSON object of names to numbers.")]
            return {}
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        errors[field] = [_("Metrics are a mapping of at most %(max)s names to numbers.") % {"max": MAX_METRICS}]
        return {}
    result = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, bool) or not isinstance(item, int | float):
            errors[field] = [_("Metric %(name)r is not a number.") % {"name": key}]
            return {}
        result[key[:100]] = item
    return result


# --- registered models ---------------------------------------------------------------------------------


@transaction.atomic
def model_create(*, user, team: Team | None, name: Any, description: Any = "", tags: Any = None) -> RegisteredModel:
    """A new registered model in a team the user belongs to."""
    team = _member_team(user, team)
    errors: dict[str, list[str]] = {}
    problem = _name_problem(name, 63)
    if problem:
        errors["name"] = [problem]
    elif RegisteredModel.objects.filter(team=team, name=name).exists():
        errors["name"] = [_("The team already has a model named %(name)r.") % {"name": name}]
    if not isinstance(description, str) or len(description) > 5000:
        errors["description"] = [_("Text of at most 5000 characters.")]
    clean_tags = _tags(tags, errors)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(
                team=team, name=name, description=description, tags=clean_tags, owner=user
            )
    except IntegrityError:
        raise ValidationError({"name": [_("The team already has a model named %(name)r.") % {"name": name}]}) from None


@transaction.atomic
def model_update(*, user, model: RegisteredModel, description: Any = None, tags: Any = None) -> RegisteredModel:
    _must(user, model)
    errors: dict[str, list[str]] = {}
    fields = []
    if description is not None:
        if not isinstance(description, str) or len(description) > 5000:
            errors["description"] = [_("Text of at most 5000 characters.")]
        model.description = description
        fields.append("description")
    if tags is not None:
        model.tags = _tags(tags, errors)
        fields.append("tags")
    if errors:
        raise ValidationError(errors)
    if fields:
        model.save(update_fields=[*fields, "updated_at"])
    return model


def _services_using(versions) -> list[InferenceService]:
    """Services that serve, start, or are set to one of the versions (directly, or through an alias they follow)."""
    ids = [v.pk for v in versions]
    followed = ModelAlias.objects.filter(version__in=ids, model=OuterRef("model"), name=OuterRef("alias"))
    return list(
        InferenceService.objects.filter(
            Q(version__in=ids)
            | Q(canary_version__in=ids)
            | Q(primary__version__in=ids)
            | Q(canary__version__in=ids)
            | Q(next__version__in=ids)
            | Exists(followed)
        )
        .select_related("team")
        .distinct()
    )


def _in_use_refusal(services: list[InferenceService]) -> ServingActionRefused:
    names = ", ".join(sorted(f"{s.team.slug}/{s.name}" for s in services))
    return ServingActionRefused(_("In use by the inference service %(names)s: change or delete it first.") % {
        "names": names
    })


def model_delete(*, user, model: RegisteredModel) -> None:
    """Delete a model, its versions and their files; refused while a service uses it."""
    _must(user, model)
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        users = list(InferenceService.objects.filter(model=model).select_related("team"))
        if users:
            raise _in_use_refusal(users)
        prefixes = [v.prefix for v in model.versions.select_related("model__team")]
        Revision.objects.filter(version__model=model).delete()
        ModelAlias.objects.filter(model=model).delete()
        model.delete()
    for prefix in prefixes:
        model_store().delete_prefix(prefix)


# --- versions ----------------------------------------------------------------------------------------------


def _source_folder(user, job: Job | None, path: Any) -> tuple[Path, str]:
    """The folder of a job's outputs to register: ``model_dir`` or below it (or another output's subfolder)."""
    if job is None:
        raise ValidationError({"job": [_("No such job.")]})
    if not permissions.can(user, job, permissions.Action.VIEW):
        raise ValidationError({"job": [_("No such job.")]})
    path = path or "model_dir"
    try:
        parts = parts_of(path) if isinstance(path, str) else None
    except PathRefused as exc:
        raise ValidationError({"path": [str(exc)]}) from None
    outputs = ("model_dir", "share_dir")
    if not parts or parts[0] not in outputs:
        raise ValidationError({"path": [_("A folder of the job's model_dir or share_dir, such as model_dir/best.")]})
    root = Path(settings.EASYAI_STORAGE_ROOT)
    try:  # a job owns its folders: a link on the way down could lead anywhere on the portal's host
        folder = folders.no_link_below(storage.output_dir(root, job.public_id, parts[0]), parts[1:])
    except folders.FolderRefused as exc:
        raise ValidationError({"path": [str(exc)]}) from None
    return folder, "/".join(parts)


def _lineage(job: Job) -> dict[str, Any]:
    spec = job.spec or {}
    chain = []
    current = job.pre_job
    while current is not None and len(chain) < 20:
        chain.append(current.public_id)
        current = current.pre_job
    return {
        "job": job.public_id,
        "job_name": job.name,
        "framework": job.framework,
        "experiment": job.experiment.name if job.experiment_id else "",
        "image": spec.get("image", ""),
        "command": spec.get("command", ""),
        "owner": job.owner.username,
        "pre_jobs": chain,
    }


def _copy_in(folder: Path, prefix: str, model_format: str, where: str) -> tuple[list[dict], int, dict]:
    """Check and copy a folder's files into the store under ``prefix``: (file entries, size, metrics.json's)."""
    try:
        found = formats.walk(folder)
        formats.check_folder(found, model_format, where)
    except formats.FolderRefused as exc:
        raise ValidationError({"path": [str(exc)]}) from None
    file_metrics: dict = {}
    entries = []
    store = model_store()
    try:
        for relative, full in found:
            size, digest = formats.sha256_of(full)
            store.put_file(f"{prefix}/{relative}", full)
            entries.append({"path": relative, "size": size, "sha256": digest})
            if relative == formats.METRICS_FILE and size <= 1024 * 1024:
                errors: dict = {}
                file_metrics = _metrics(full.read_text(errors="replace"), errors)
    except BaseException:
        store.delete_prefix(prefix)
        raise
    return entries, sum(e["size"] for e in entries), file_metrics


def _next_number(model: RegisteredModel) -> int:
    return (model.versions.aggregate(top=Max("number"))["top"] or 0) + 1


def _model_for(user, team: Team, name: Any, create: bool) -> RegisteredModel:
    model = RegisteredModel.objects.filter(team=team, name=name).first() if isinstance(name, str) else None
    if model is None:
        if not create:
            raise ValidationError({"name": [_("The team has no model named %(name)r.") % {"name": name}]})
        model = model_create(user=user, team=team, name=name)
    # Any member adds versions to the team's models; moving aliases and deleting are the owner's and admins'.
    return model


def _register(
    *,
    user,
    team: Team,
    name: Any,
    folder: Path,
    where: str,
    model_format: Any,
    metrics: Any,
    description: Any,
    job: Job | None = None,
    source_path: str = "",
) -> ModelVersion:
    errors: dict[str, list[str]] = {}
    problem = formats.format_problem(model_format)
    if problem:
        errors["format"] = [problem]
    given_metrics = _metrics(metrics, errors)
    if not isinstance(description, str) or len(description) > 5000:
        errors["description"] = [_("Text of at most 5000 characters.")]
    problem = _name_problem(name, 63)
    if problem:
        errors["name"] = [problem]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        model = _model_for(user, team, name, create=True)
        model = RegisteredModel.objects.select_for_update().select_related("team").get(pk=model.pk)
        number = _next_number(model)
        prefix = f"models/{team.slug}/{model.name}/{number}"
        model_store().delete_prefix(prefix)  # what a failed registration may have left
        entries, size, file_metrics = _copy_in(folder, prefix, model_format, where)
        try:
            version = ModelVersion.objects.create(
                model=model,
                number=number,
                format=model_format,
                description=description,
                files=entries,
                digest=ModelVersion.digest_of(entries),
                size=size,
                metrics={**file_metrics, **given_metrics},
                source_job=job,
                source_job_public_id=job.public_id if job else "",
                source_path=source_path,
                lineage=_lineage(job) if job else {},
                registered_by=user,
            )
        except BaseException:
            model_store().delete_prefix(prefix)
            raise
        RegisteredModel.objects.filter(pk=model.pk).update(updated_at=timezone.now())
    return version


def version_register(
    *,
    user,
    job: Job | None,
    name: Any,
    path: Any = "model_dir",
    model_format: Any,
    metrics: Any = None,
    description: Any = "",
) -> ModelVersion:
    """Register a job's model folder as the next version of the team's model (made on first use)."""
    folder, source_path = _source_folder(user, job, path)
    team = _member_team(user, job.team)
    return _register(
        user=user,
        team=team,
        name=name,
        folder=folder,
        where=f"{job.public_id}/{source_path}",
        model_format=model_format,
        metrics=metrics,
        description=description,
        job=job,
        source_path=source_path,
    )


def _unzip(archive, into: Path) -> None:
    """A pushed zip archive's files under ``into``: no absolute paths, no '..', no links, bounded size."""
    try:
        folders.unzip_into(archive, into, max_files=formats.MAX_FILES, max_bytes=PUSH_MAX_BYTES)
    except folders.FolderRefused as exc:
        raise ValidationError({"archive": [str(exc)]}) from None


def version_push(
    *,
    user,
    team: Team | None,
    name: Any,
    archive: Any,
    model_format: Any,
    metrics: Any = None,
    description: Any = "",
) -> ModelVersion:
    """Register files from outside (a zip archive of a folder, as ``easyai model push`` sends it)."""
    team = _member_team(user, team)
    if archive is None:
        raise ValidationError({"archive": [_("This field is required: a zip archive of the model's folder.")]})
    if isinstance(archive, bytes):
        archive = io.BytesIO(archive)
    with tempfile.TemporaryDirectory(prefix="easyai-push-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        _unzip(archive, folder)
        return _register(
            user=user,
            team=team,
            name=name,
            folder=folder,
            where=_("the archive"),
            model_format=model_format,
            metrics=metrics,
            description=description,
        )


def version_delete(*, user, version: ModelVersion) -> None:
    """Delete a version and its files; refused (409) while a service serves or is set to it."""
    _must(user, version.model)
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=version.model_id)
        users = _services_using([version])
        if users:
            raise _in_use_refusal(users)
        for alias in ModelAlias.objects.filter(version=version):
            AliasMove.objects.create(
                model_id=version.model_id, alias=alias.name, from_number=version.number, to_number=None, moved_by=user
            )
            alias.delete()
        prefix = version.prefix
        Revision.objects.filter(version=version).delete()
        version.delete()
    model_store().delete_prefix(prefix)


def version_files(version: ModelVersion) -> list[dict]:
    return list(version.files)


# --- aliases ---------------------------------------------------------------------------------------------------


def alias_set(*, user, model: RegisteredModel, alias: Any, number: Any) -> ModelAlias:
    """Point an alias at a version (recorded); services following it roll to that version."""
    _must(user, model)
    errors: dict[str, list[str]] = {}
    problem = _name_problem(alias, 63)
    if problem:
        errors["alias"] = [problem]
    if isinstance(number, str) and whole_number(number, 9) is not None:
        number = whole_number(number, 9)
    version = None
    if isinstance(number, bool) or not isinstance(number, int):
        errors["version"] = [_("A version number.")]
    else:
        version = model.versions.filter(number=number).first()
        if version is None:
            errors["version"] = [_("The model has no version %(number)s.") % {"number": number}]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)
        current = ModelAlias.objects.filter(model=model, name=alias).select_related("version").first()
        if current is not None and current.version_id == version.pk:
            return current
        AliasMove.objects.create(
            model=model,
            alias=alias,
            from_number=current.version.number if current else None,
            to_number=version.number,
            moved_by=user,
        )
        if current is None:
            current = ModelAlias.objects.create(model=model, name=alias, version=version)
        else:
            current.version = version
            current.save(update_fields=["version", "updated_at"])
        for service in InferenceService.objects.filter(model=model, alias=alias):
            transaction.on_commit(lambda pk=service.pk: _enqueue_roll(pk))
    return current


def alias_delete(*, user, model: RegisteredModel, alias: str) -> None:
    _must(user, model)
    with transaction.atomic():
        current = ModelAlias.objects.filter(model=model, name=alias).select_related("version").first()
        if current is None:
            raise ValidationError({"alias": [_("The model has no alias %(alias)r.") % {"alias": alias}]})
        followers = list(InferenceService.objects.filter(model=model, alias=alias).select_related("team"))
        if followers:
            raise _in_use_refusal(followers)
        AliasMove.objects.create(
            model=model, alias=alias, from_number=current.version.number, to_number=None, moved_by=user
        )
        current.delete()


# --- pull tokens ---------------------------------------------------------------------------------------------


def pull_token_create(*, user, team: Team | None, name: Any) -> tuple[PullToken, str]:
    """A read-only token for the team's models (team admins): the token itself is returned once."""
    if team is None or not permissions.can_admin_team(user, team):
        raise ValidationError({"team": [_("Only a team admin makes pull tokens for the team's models.")]})
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValidationError({"name": [_("A name of at most 100 characters (what the token is for).")]})
    key = PullToken.PREFIX + secrets.token_urlsafe(32)
    token = PullToken.objects.create(
        team=team, name=name.strip(), key_hash=PullToken.hash_of(key), hint=key[:10], created_by=user
    )
    return token, key


def pull_token_revoke(*, user, token: PullToken) -> PullToken:
    if not permissions.can_admin_team(user, token.team):
        raise ServingActionRefused(_("Only a team admin revokes the team's pull tokens."))
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def pull_token_team(key: str) -> Team | None:
    """The team whose models a pull token may read, or None (unknown or revoked)."""
    if not isinstance(key, str) or not key.startswith(PullToken.PREFIX):
        return None
    token = PullToken.objects.filter(key_hash=PullToken.hash_of(key), revoked_at__isnull=True).select_related("team")
    found = token.first()
    if found is None:
        return None
    now = timezone.now()
    if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
        PullToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found.team


# --- inference services ----------------------------------------------------------------------------------------


def _resources(cpu: Any, memory: Any, gpu: Any, errors: dict) -> tuple[str, str, int]:
    cpu_text, memory_text = str(cpu), str(memory)
    try:
        if parse_cpu(cpu_text) <= 0:
            raise ValueError
    except (ValueError, TypeError):
        errors["cpu"] = [_("A CPU quantity such as 1, 0.5 or 500m.")]
    try:
        if parse_memory(memory_text) <= 0:
            raise ValueError
    except (ValueError, TypeError):
        errors["memory"] = [_("A memory quantity such as 2Gi or 512Mi.")]
    if isinstance(gpu, str) and whole_number(gpu, 3) is not None:
        gpu = whole_number(gpu, 3)
    if isinstance(gpu, bool) or not isinstance(gpu, int) or not 0 <= gpu <= 64:
        errors["gpu"] = [_("A whole number of GPUs, 0 to 64.")]
        gpu = 0
    return cpu_text, memory_text, gpu


def _count(value: Any, field: str, low: int, high: int, errors: dict) -> int:
    if isinstance(value, str) and whole_number(value, 9) is not None:
        value = whole_number(value, 9)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[field] = [_("A whole number from %(low)s to %(high)s.") % {"low": low, "high": high}]
        return low
    return value


def percent_of(value: Any, errors: dict, field: str = "percent") -> int:
    """Traffic in whole percent, 0-100."""
    if isinstance(value, str) and whole_number(value, 3) is not None:
        value = whole_number(value, 3)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        errors[field] = [_("A whole percentage from 0 to 100.")]
        return 0
    return value


def _version_of(model: RegisteredModel | None, number: Any, errors: dict, field: str = "version"):
    if model is None:
        return None
    if isinstance(number, str) and whole_number(number, 9) is not None:
        number = whole_number(number, 9)
    if isinstance(number, bool) or not isinstance(number, int):
        errors[field] = [_("A version number.")]
        return None
    version = model.versions.filter(number=number).first()
    if version is None:
        errors[field] = [_("The model has no version %(number)s.") % {"number": number}]
    return version


def _cluster_for(team: Team, name: Any, errors: dict) -> Cluster | None:
    clusters = Cluster.objects.filter(enabled=True)
    cluster = clusters.filter(name=name).first() if name else clusters.filter(is_default=True).first()
    if cluster is None:
        errors["cluster"] = [_("No such cluster.") if name else _("There is no default cluster: name one.")]
    return cluster


def service_create(
    *,
    user,
    team: Team | None,
    name: Any,
    model: Any,
    version: Any = None,
    alias: Any = "",
    cluster: Any = None,
    cpu: Any = "1",
    memory: Any = "2Gi",
    gpu: Any = 0,
    min_replicas: Any = 1,
    max_replicas: Any = 1,
    public: Any = False,
) -> InferenceService:
    """An inference service of one of the team's models: its first revision starts at once."""
    team = _member_team(user, team)
    errors: dict[str, list[str]] = {}
    problem = _name_problem(name, 45)
    if problem:
        errors["name"] = [problem]
    elif InferenceService.objects.filter(team=team, name=name).exists():
        errors["name"] = [_("The team already has a service named %(name)r.") % {"name": name}]
    registered = RegisteredModel.objects.filter(team=team, name=model).first() if isinstance(model, str) else None
    if registered is None:
        errors["model"] = [_("The team has no model named %(name)r.") % {"name": model}]
    fixed = None
    alias = alias or ""
    if version not in (None, "") and alias:
        errors["alias"] = [_("Give a version or an alias to follow, not both.")]
    elif alias:
        problem = _name_problem(alias, 63)
        if problem:
            errors["alias"] = [problem]
        elif registered is not None and not ModelAlias.objects.filter(model=registered, name=alias).exists():
            errors["alias"] = [_("The model has no alias %(alias)r.") % {"alias": alias}]
    elif version not in (None, ""):
        fixed = _version_of(registered, version, errors)
    elif registered is not None:
        fixed = registered.versions.order_by("-number").first()
        if fixed is None:
            errors["version"] = [_("The model has no version yet: register one first.")]
    cpu, memory, gpu = _resources(cpu, memory, gpu, errors)
    low = _count(min_replicas, "min_replicas", 0, MAX_REPLICAS, errors)
    high = _count(max_replicas, "max_replicas", 1, MAX_REPLICAS, errors)
    if "min_replicas" not in errors and "max_replicas" not in errors and low > high:
        errors["max_replicas"] = [_("At least min_replicas.")]
    if not isinstance(public, bool):
        errors["public"] = [_("true or false.")]
    elif public and not permissions.can_admin_team(user, team):
        errors["public"] = [_("Only a team admin makes a service public.")]
    resolved = _cluster_for(team, cluster, errors)
    if resolved is not None and resolved.kind == Cluster.Kind.LOCAL and low == 0:
        errors["min_replicas"] = [_("The local cluster keeps one replica running: at least 1.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        try:
            with transaction.atomic():
                service = InferenceService.objects.create(
                    team=team,
                    name=name,
                    cluster=resolved,
                    model=registered,
                    version=fixed,
                    alias=alias,
                    cpu=cpu,
                    memory=memory,
                    gpu=gpu,
                    min_replicas=low,
                    max_replicas=high,
                    public=public,
                    owner=user,
                )
        except IntegrityError:
            raise ValidationError(
                {"name": [_("The team already has a service named %(name)r.") % {"name": name}]}
            ) from None
        _start(service, target_version(service), canary=False, user=user)
    return service


def _lock(service: InferenceService) -> InferenceService:
    return (
        InferenceService.objects.select_for_update()
        .select_related("team", "cluster", "model", "version", "canary_version", "primary", "canary", "next")
        .get(pk=service.pk)
    )


def _start(service: InferenceService, version: ModelVersion | None, *, canary: bool, user) -> Revision | None:
    """A new revision of the service serving ``version``, as its replacement (next) or its canary."""
    if version is None:
        service.message = _("The alias %(alias)r points at no version.") % {"alias": service.alias}
        service.save(update_fields=["message"])
        return None
    number = (service.revisions.aggregate(top=Max("number"))["top"] or 0) + 1
    revision = Revision.objects.create(service=service, number=number, version=version)
    old = service.canary if canary else service.next
    if canary:
        service.canary = revision
    else:
        service.next = revision
    service.save(update_fields=["canary" if canary else "next"])
    if old is not None:
        runtime.retire(old, message=_("Replaced by revision %(number)s.") % {"number": number})
    transaction.on_commit(lambda: runtime.enqueue_start(revision.pk))
    return revision


def _enqueue_roll(service_pk: int) -> None:
    runtime.enqueue("serving.tasks.service_roll", service_pk)


def service_roll(service_pk: int) -> None:
    """Start a revision of the service's target version when neither what serves nor what starts has it."""
    with transaction.atomic():
        service = _lock(InferenceService(pk=service_pk))
        version = target_version(service)
        current = service.next or service.primary
        if version is not None and (current is None or current.version_id != version.pk):
            _start(service, version, canary=False, user=None)


def service_update(
    *,
    user,
    service: InferenceService,
    version: Any = None,
    alias: Any = None,
    cpu: Any = None,
    memory: Any = None,
    gpu: Any = None,
    min_replicas: Any = None,
    max_replicas: Any = None,
    public: Any = None,
) -> InferenceService:
    """Change what a service serves or how: a new revision starts, and takes traffic only once it answers."""
    _must(user, service)
    errors: dict[str, list[str]] = {}
    with transaction.atomic():
        service = _lock(service)
        fields: list[str] = []
        restart = False
        if version not in (None, "") and alias not in (None, ""):
            errors["alias"] = [_("Give a version or an alias to follow, not both.")]
        elif version not in (None, ""):
            fixed = _version_of(service.model, version, errors)
            if fixed is not None:
                service.version, service.alias = fixed, ""
                fields += ["version", "alias"]
        elif alias not in (None, ""):
            problem = _name_problem(alias, 63)
            if problem:
                errors["alias"] = [problem]
            elif not ModelAlias.objects.filter(model=service.model, name=alias).exists():
                errors["alias"] = [_("The model has no alias %(alias)r.") % {"alias": alias}]
            else:
                service.version, service.alias = None, alias
                fields += ["version", "alias"]
        if any(value is not None for value in (cpu, memory, gpu)):
            new = _resources(
                service.cpu if cpu is None else cpu,
                service.memory if memory is None else memory,
                service.gpu if gpu is None else gpu,
                errors,
            )
            if new != (service.cpu, service.memory, service.gpu):
                service.cpu, service.memory, service.gpu = new
                fields += ["cpu", "memory", "gpu"]
                restart = True
        if min_replicas is not None or max_replicas is not None:
            low = _count(service.min_replicas if min_replicas is None else min_replicas, "min_replicas", 0, 100, errors)
            high = _count(service.max_replicas if max_replicas is None else max_replicas, "max_replicas", 1, 100, errors)
            if low > high:
                errors["max_replicas"] = [_("At least min_replicas.")]
            if runtime.is_local(service.cluster) and low == 0:
                errors["min_replicas"] = [_("The local cluster keeps one replica running: at least 1.")]
            # Locally a revision runs min_replicas model servers: a new count is a new revision.
            restart = restart or (runtime.is_local(service.cluster) and low != service.min_replicas)
            service.min_replicas, service.max_replicas = low, high
            fields += ["min_replicas", "max_replicas"]
        if public is not None:
            if not isinstance(public, bool):
                errors["public"] = [_("true or false.")]
            elif public != service.public and not permissions.can_admin_team(user, service.team):
                errors["public"] = [_("Only a team admin makes a service public, or private again.")]
            else:
                service.public = public
                fields.append("public")
        if errors:
            raise ValidationError(errors)
        if fields:
            service.save(update_fields=fields)
        target = target_version(service)
        current = service.next or service.primary
        if restart or (target is not None and (current is None or current.version_id != target.pk)):
            _start(service, target, canary=False, user=user)
        elif fields:
                    transaction.on_commit(lambda: runtime.enqueue("serving.tasks.service_apply", service.pk))
    return service


def service_canary(*, user, service: InferenceService, version: Any, percent: Any) -> InferenceService:
    """A second version taking ``percent`` of the traffic once it answers (the same version: a new share)."""
    _must(user, service)
    errors: dict[str, list[str]] = {}
    share = percent_of(percent, errors)
    with transaction.atomic():
        service = _lock(service)
        chosen = _version_of(service.model, version, errors)
        if errors:
            raise ValidationError(errors)
        service.canary_percent = share
        service.canary_version = chosen
        service.save(update_fields=["canary_percent", "canary_version"])
        if service.canary is None or service.canary.version_id != chosen.pk:
            _start(service, chosen, canary=True, user=user)
        else:
                    transaction.on_commit(lambda: runtime.enqueue("serving.tasks.service_apply", service.pk))
    return service


def service_promote(*, user, service: InferenceService) -> InferenceService:
    """The canary takes all the traffic and becomes what the service serves (its alias moves with it)."""
    _must(user, service)
    with transaction.atomic():
        service = _lock(service)
        canary = service.canary
        if canary is None:
            raise ServingActionRefused(_("The service has no canary to promote."))
        if canary.state != "ready":
            raise ServingActionRefused(
                _("The canary (revision %(number)s) does not answer yet: promote it once it is ready.")
                % {"number": canary.number}
            )
        old_primary, old_next = service.primary, service.next
        service.primary, service.canary, service.next = canary, None, None
        service.canary_version, service.canary_percent = None, 0
        service.message = ""
        if service.alias:
            alias_set(user=user, model=service.model, alias=service.alias, number=canary.version.number)
        else:
            service.version = canary.version
        service.save(update_fields=["primary", "canary", "next", "canary_version", "canary_percent", "message", "version"])
        for old in (old_primary, old_next):
            if old is not None and old.pk != canary.pk:
                runtime.retire(old, message=_("Replaced by the promoted canary (revision %(n)s).") % {"n": canary.number})
        transaction.on_commit(lambda: runtime.enqueue("serving.tasks.service_apply", service.pk))
    return service


def service_rollback(*, user, service: InferenceService) -> InferenceService:
    """Without a canary: back to the version served before (a new revision of it). With one: drop the canary."""
    _must(user, service)
    with transaction.atomic():
        service = _lock(service)
        if service.canary is not None or service.canary_version_id:
            if service.canary is not None:
                runtime.retire(service.canary, message=_("Rolled back."))
            service.canary, service.canary_version, service.canary_percent = None, None, 0
            service.save(update_fields=["canary", "canary_version", "canary_percent"])
            transaction.on_commit(lambda: runtime.enqueue("serving.tasks.service_apply", service.pk))
            return service
        current = service.primary
        earlier = (
            service.revisions.filter(state="retired", ready_at__isnull=False)
            .exclude(version_id=current.version_id if current else None)
            .order_by("-number")
            .select_related("version")
            .first()
        )
        if earlier is None:
            raise ServingActionRefused(_("No earlier version served: nothing to roll back to."))
        if service.alias:
            alias_set(user=user, model=service.model, alias=service.alias, number=earlier.version.number)
        else:
            service.version = earlier.version
            service.save(update_fields=["version"])
            _start(service, earlier.version, canary=False, user=user)
    return service


def service_delete(*, user, service: InferenceService) -> None:
    """Stop every revision and forget the service (its revisions' jobs stay in the jobs' history)."""
    _must(user, service)
    with transaction.atomic():
        service = _lock(service)
        for revision in service.revisions.exclude(state__in=["failed", "retired"]):
            runtime.retire(revision, message=_("The service was deleted."))
        cluster, team, name = service.cluster, service.team.slug, service.name
        service.delete()
        transaction.on_commit(lambda: runtime.enqueue("serving.tasks.service_remove", cluster.pk, team, name))


def service_stats(service_pk: int, requests: int, errors: int, latency_ms: float) -> None:
    """Add what the proxy counted since it last flushed."""
    from django.db.models import F

    InferenceService.objects.filter(pk=service_pk).update(
        requests=F("requests") + requests,
        errors=F("errors") + errors,
        latency_ms_total=F("latency_ms_total") + latency_ms,
    )
