"""Functions that change apps. Pages, the API, the admin, the proxy (a wake) and the clock all call these.

Publishing copies the app's folder (from the owner's personal workspace, or an uploaded zip archive) into a
new revision under ``apps/{team}/{name}/{number}/`` of the storage root, then runs it: a single-task job of
framework ``app`` (``job_submit(internal=True)``) whose spec ``apps/specs.py`` builds. Everything is checked
before anything is written; a refused publish leaves no row, no file and no job behind.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from apps import specs
from apps.models import APP_TASK, App, AppKind, AppRevision, AppStatus, Visibility
from clusters.backends.contract import storage
from clusters.backends.contract.quantity import whole_number
from clusters.models import Cluster
from endpoints import origin as endpoint_origin
from files import folders
from files.paths import PathRefused, parts_of, safe_join
from jobs import services as job_services
from jobs.models import Job
from jobs.spec.vocabulary import RESERVED_ENV
from jobs.state import ACTIVE, FINAL, Input, JobState
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
MAX_FILES = 5_000
MAX_ENV = 100
MAX_SHARED = 200
LOG_TAIL_LINES = 20
# Reserved for the portal: the contract's variables, what the app is told, and what each kind is run with.
_RESERVED_PREFIXES = ("EASYAI_", "GRADIO_", "STREAMLIT_")
_RESERVED_NAMES = frozenset({*RESERVED_ENV, "PORT", "HOST", "PATH", "HOME", "PYTHONPATH"})

# Spec paths of an app's job -> the app's own fields, so errors name what the user typed.
_SPEC_FIELDS = {
    "roles.app.cpu": "cpu",
    "roles.app.memory": "memory",
    "roles.app.gpu": "gpu",
    "roles": "resources",
    "image": "image",
    "cluster": "cluster",
    "env": "env",
}


class AppActionRefused(ActionRefused):
    """An action the app's state does not allow (stopping a stopped app). Faces answer 409."""


def max_bytes() -> int:
    return int(settings.EASYAI_APP_MAX_BYTES)


def revision_dir(team: str, name: str, number: int) -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT) / storage.app_source_dir(team, f"{name}/{number}")


def app_dir(team: str, name: str) -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT) / "apps" / team / name


def _as_fields(exc: ValidationError) -> ValidationError:
    errors: dict[str, list[str]] = {}
    for path, messages in exc.message_dict.items():
        errors.setdefault(_SPEC_FIELDS.get(path, path), []).extend(messages)
    return ValidationError(errors)


def _must(user, app: App) -> None:
    if not permissions.can(user, app, permissions.Action.CHANGE):
        raise permissions.PermissionDenied(_("Only the app's owner or a team admin may do this."))


# --- checking what the user gave -------------------------------------------------------------------------


def _name(value: Any, errors: dict) -> str:
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not value:
        errors["name"] = [_("This field is required.")]
    elif len(value) > 40 or not _NAME.fullmatch(value):
        errors["name"] = [
            _("Lowercase letters, digits and '-', starting and ending with a letter or digit, at most 40.")
        ]
    return value if isinstance(value, str) else ""


def _variables(value: Any, field: str, errors: dict) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        errors[field] = [_("A mapping of variable names to values.")]
        return {}
    if len(value) > MAX_ENV:
        errors[field] = [_("At most %(n)s variables.") % {"n": MAX_ENV}]
        return {}
    result = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key) or len(key) > 128:
            errors[field] = [_("%(name)r is not a variable name (letters, digits and '_').") % {"name": key}]
            return {}
        if key in _RESERVED_NAMES or key.startswith(_RESERVED_PREFIXES):
            errors[field] = [_("%(name)s is set by the platform and cannot be given.") % {"name": key}]
            return {}
        if isinstance(item, bool) or not isinstance(item, str | int | float) or len(str(item)) > 32_768:
            errors[field] = [_("The value of %(name)s must be a string (at most 32 KiB).") % {"name": key}]
            return {}
        result[key] = str(item)
    return result


def _idle_minutes(value: Any, errors: dict) -> int:
    if isinstance(value, str) and whole_number(value, 6) is not None:
        value = whole_number(value, 6)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_080:
        errors["idle_minutes"] = [_("A whole number of minutes from 0 (never sleeps) to 10080 (a week).")]
        return 0
    return value


def _visibility(value: Any, shared_with: Any, team: Team, errors: dict) -> tuple[str, list]:
    if value not in Visibility.values:
        errors["visibility"] = [_("One of %(choices)s.") % {"choices": ", ".join(Visibility.values)}]
        return Visibility.TEAM, []
    if value != Visibility.TEAM and not endpoint_origin.origin().wildcard:
        errors["visibility"] = [
            _(
                "A public or shared app needs a host of its own: on the one host all endpoints share, its scripts "
                "could reach its visitors' notebooks and their team's apps. A platform admin sets a wildcard "
                "endpoint origin (EASYAI_ENDPOINTS_URL=https://*.endpoints.example.com) to allow it."
            )
        ]
        return Visibility.TEAM, []
    if value != Visibility.SHARED:
        if shared_with:
            errors["shared_with"] = [_("Only an app whose visibility is 'shared' is shared with named users.")]
        return value, []
    if not isinstance(shared_with, list | tuple) or not all(isinstance(u, str) for u in shared_with):
        errors["shared_with"] = [_("A list of usernames.")]
        return value, []
    if not shared_with:
        errors["shared_with"] = [_("Name at least one user to share the app with.")]
        return value, []
    if len(shared_with) > MAX_SHARED:
        errors["shared_with"] = [_("At most %(n)s users.") % {"n": MAX_SHARED}]
        return value, []
    names = sorted(set(shared_with))
    users = list(get_user_model().objects.filter(username__in=names, is_active=True))
    missing = sorted(set(names) - {u.username for u in users})
    if missing:
        errors["shared_with"] = [_("No such user: %(names)s.") % {"names": ", ".join(missing)}]
    return value, users


def _code(
    kind: Any, entry: Any, command: Any, errors: dict
) -> tuple[str, str, str]:
    """(kind, entry, command) checked for the kind; the entry's presence is checked against the files later."""
    if kind not in AppKind.values:
        errors["kind"] = [_("One of %(kinds)s.") % {"kinds": ", ".join(AppKind.values)}]
        return "", "", ""
    entry = entry.strip() if isinstance(entry, str) else entry
    command = command.strip() if isinstance(command, str) else command
    if kind == AppKind.CUSTOM:
        if not isinstance(command, str) or not command:
            errors["command"] = [_("A custom app needs the command that serves it (on $PORT).")]
        elif len(command) > 4096 or "\n" in command or "\x00" in command:
            errors["command"] = [_("One line of at most 4096 characters.")]
        if entry not in (None, ""):
            if not isinstance(entry, str):
                errors["entry"] = [_("A file of the app's folder, such as app.py.")]
            else:
                try:
                    entry = "/".join(parts_of(entry))
                except PathRefused as exc:
                    errors["entry"] = [str(exc)]
        return kind, entry or "", command if isinstance(command, str) else ""
    if command not in (None, ""):
        errors["command"] = [_("Only a custom app has a command: a %(kind)s app runs its entry file.") % {"kind": kind}]
    if not isinstance(entry, str) or not entry:
        errors["entry"] = [_("The app's entry file, such as app.py, is required.")]
        return kind, "", ""
    try:
        parts = parts_of(entry)
    except PathRefused as exc:
        errors["entry"] = [str(exc)]
        return kind, "", ""
    if not parts or not parts[-1].endswith(".py"):
        errors["entry"] = [_("A Python file of the app's folder, such as app.py.")]
        return kind, "", ""
    return kind, "/".join(parts), ""


def _check_program(kind: str, cluster: Cluster | None, errors: dict) -> None:
    if cluster is None or cluster.kind != Cluster.Kind.LOCAL or kind == AppKind.CUSTOM:
        return  # on Kubernetes the image brings it
    import importlib.util

    if importlib.util.find_spec(kind) is None:
        errors["kind"] = [
            _("%(kind)s is not installed on the local cluster's host: pip install -r requirements-apps.txt")
            % {"kind": AppKind(kind).label}
        ]


def _resources(user, team: Team, cluster: Any, image: Any, cpu: Any, memory: Any, gpu: Any, errors: dict):
    """The resources, the cluster (named, or the default) and the team's quota, checked as job_submit will."""
    if isinstance(gpu, str) and whole_number(gpu, 9) is not None:
        gpu = whole_number(gpu, 9)
    if not isinstance(image, str) or len(image) > 1024 or (image and not re.fullmatch(r"\S+", image)):
        errors["image"] = [_("An image name without spaces.")]
        image = ""
    probe = {
        "name": "probe",
        "framework": "app",
        "team": team.slug,
        "cluster": cluster or None,
        "command": "true",
        "image": image or settings.EASYAI_APP_IMAGE,
        "roles": {"app": {"cpu": cpu, "memory": memory, "gpu": gpu}},
    }
    try:
        _spec, _team, resolved, _volumes, _pre = job_services.job_prepare(user=user, data=probe, internal=True)
    except ValidationError as exc:
        for field, messages in _as_fields(exc).message_dict.items():
            errors.setdefault(field, messages)
        return None, image, gpu
    return resolved, image, gpu


# --- the folder -----------------------------------------------------------------------------------------


def _workspace_folder(user, source: Any, errors: dict) -> Path | None:
    """A folder of the user's personal workspace (``demo`` or ``apps/demo``), as the Files page names it; a link
    on the way may not lead out of the workspace."""
    if not isinstance(source, str) or not source.strip():
        errors["source"] = [_("A folder of your personal workspace, such as apps/demo.")]
        return None
    root = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), user.username)
    try:
        return safe_join(root, source.strip().strip("/"))
    except PathRefused as exc:
        errors["source"] = [str(exc)]
        return None


def _check_entry(files: list[dict], entry: str, field: str, errors: dict) -> None:
    if not files or not entry or entry in {item["path"] for item in files}:
        return
    if field == "archive":
        errors["entry"] = [_("There is no file %(entry)s in the archive.") % {"entry": entry}]
    else:
        errors["entry"] = [_("There is no file %(entry)s in the folder.") % {"entry": entry}]


def _digest(files: list[dict]) -> str:
    total = hashlib.sha256()
    for item in files:
        total.update(f"{item['path']}\0{item['sha256']}\n".encode())
    return total.hexdigest()


class _Staged:
    """A publish's files, copied (and summed) into a staging folder beside the app's revisions before anything is
    recorded: from a workspace folder, or an archive unpacked into a temporary one. ``files`` stays empty and
    ``errors`` says why when the folder cannot be taken."""

    def __init__(self, user, team: str, name: str, source: Any, archive: Any, errors: dict) -> None:
        self.field, self.label, self.files, self.path = "source", "", [], None
        if archive is not None and source not in (None, ""):
            errors["source"] = [_("Give a workspace folder or an archive, not both.")]
            return
        if "name" in errors:
            return  # nowhere to stage it
        with tempfile.TemporaryDirectory(prefix="easyai-app-") as tmp:
            if archive is not None:
                self.field, self.label = "archive", "archive"
                folder = Path(tmp) / "app"
                folder.mkdir()
                try:
                    folders.unzip_into(
                        io.BytesIO(archive) if isinstance(archive, bytes) else archive,
                        folder,
                        max_files=MAX_FILES,
                        max_bytes=max_bytes(),
                    )
                except folders.FolderRefused as exc:
                    errors["archive"] = [str(exc)]
                    return
            else:
                folder = _workspace_folder(user, source, errors)
                if folder is None:
                    return
                self.label = source.strip().strip("/")
            self.path = app_dir(team, name) / f".staging-{uuid.uuid4().hex}"
            try:
                self.files = folders.copy_folder(
                    folder,
                    self.path,
                    max_files=MAX_FILES,
                    max_bytes=max_bytes(),
                    too_many=_("More than %(max)s files: publish the app's own folder.") % {"max": MAX_FILES},
                )
            except folders.FolderRefused as exc:
                errors[self.field] = [str(exc)]
                self.discard()
                return
        if not self.files:
            errors[self.field] = [_("The folder is empty.")]

    def discard(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def _new_revision(app: App, user, staged: _Staged, kind: str, entry: str, command: str, created: list[Path]) -> AppRevision:
    """The staged files become the app's next revision (inside the caller's transaction, the app locked)."""
    number = (app.revisions.aggregate(top=Max("number"))["top"] or 0) + 1
    target = revision_dir(app.team.slug, app.name, number)
    if target.exists():  # left by a publish that failed after its move: never a live revision's
        shutil.rmtree(target)
    os.replace(staged.path, target)
    staged.path = None
    created.append(target)  # removed by the caller if the publish fails after this
    return AppRevision.objects.create(
        app=app, number=number, kind=kind, entry=entry, command=command, source=staged.label,
        files=staged.files, size=sum(item["size"] for item in staged.files), digest=_digest(staged.files),
        created_by=user,
    )  # fmt: skip


def _remove(created: list[Path]) -> None:
    for path in created:
        shutil.rmtree(path, ignore_errors=True)


def _run(app: App, revision: AppRevision) -> Job:
    """A new run of the app (inside the caller's transaction): the job that serves ``revision``."""
    try:
        job = job_services.job_submit(
            user=app.owner, data=specs.app_spec(app, revision, app.cluster), internal=True
        )
    except ValidationError as exc:
        raise _as_fields(exc) from None
    App.objects.filter(pk=app.pk).update(
        job=job, revision=revision, run_requested_at=timezone.now(), startup_seconds=None, message=""
    )
    app.job, app.revision, app.message = job, revision, ""
    return job


def _stop_run(app: App, *, actor=None, reason: str, message: str = "", event: str = Input.STOP) -> bool:
    job = app.job
    if job is None or job.state not in ACTIVE:
        return False
    try:
        job_services.job_stop(job=job, actor=actor, event=event, reason=reason, message=message)
    except job_services.JobActionRefused as exc:
        job.refresh_from_db()
        if job.state in ACTIVE:  # not stopped: a second run beside it would be no app's
            raise AppActionRefused(str(exc)) from None
        return False  # it ended meanwhile
    return True


def _lock(app: App) -> App:
    """The app's row, locked alone (a join would lock the team, the owner, the cluster and the job too)."""
    App.objects.select_for_update().filter(pk=app.pk).values_list("pk", flat=True).get()
    return App.objects.select_related("team", "owner", "cluster", "job", "revision").get(pk=app.pk)


def app_deploy(
    *,
    user,
    team: Team | None,
    name: Any,
    kind: Any,
    entry: Any = "",
    command: Any = "",
    source: Any = None,
    archive: Any = None,
    cluster: Any = None,
    cpu: Any = "1",
    memory: Any = "2Gi",
    gpu: Any = 0,
    image: Any = "",
    env: Any = None,
    secrets: Any = None,
    visibility: Any = Visibility.TEAM,
    shared_with: Any = None,
    idle_minutes: Any = None,
    description: Any = "",
) -> App:
    """Create an app in a team the user belongs to, publish its first revision and start it."""
    if team is None or not permissions.can_use_team(user, team):
        raise ValidationError({"team": [_("No team that you belong to: name one, or ask a team admin to add you.")]})
    errors: dict[str, list[str]] = {}
    name = _name(name, errors)
    if "name" not in errors and App.objects.filter(team=team, name=name).exists():
        errors["name"] = [_("The team already has an app named %(name)r.") % {"name": name}]
    kind, entry, command = _code(kind, entry, command, errors)
    env = _variables(env, "env", errors)
    secrets = _variables(secrets, "secrets", errors)
    clash = sorted(set(env) & set(secrets))
    if clash:
        errors["secrets"] = [_("%(names)s is both a variable and a secret.") % {"names": ", ".join(clash)}]
    idle = _idle_minutes(settings.EASYAI_APP_IDLE_MINUTES if idle_minutes in (None, "") else idle_minutes, errors)
    visibility, users = _visibility(visibility, shared_with, team, errors)
    if not isinstance(description, str) or len(description) > 500:
        errors["description"] = [_("At most 500 characters.")]
    resolved, image, gpu = _resources(user, team, cluster, image, cpu, memory, gpu, errors)
    if kind:
        _check_program(kind, resolved, errors)
    staged = _Staged(user, team.slug, name, source, archive, errors)
    try:
        _check_entry(staged.files, entry, staged.field, errors)
        if errors:
            raise ValidationError(errors)
        created: list[Path] = []
        try:
            with transaction.atomic():
                app = App(
                    team=team, name=name, owner=user, cluster=resolved, description=description, kind=kind,
                    cpu=str(cpu), memory=str(memory), gpu=gpu, image=image, env=env, visibility=visibility,
                    idle_minutes=idle,
                )  # fmt: skip
                app.secrets = secrets
                app.save()
                app.shared_with.set(users)
                revision = _new_revision(app, user, staged, kind, entry, command, created)
                _run(app, revision)
        except IntegrityError:  # the same name taken by a publish that committed a moment before
            _remove(created)
            raise ValidationError({"name": [_("The team already has an app named %(name)r.") % {"name": name}]}) from None
        except BaseException:
            _remove(created)
            raise
    finally:
        staged.discard()
    return app


def app_publish(
    *, user, app: App, source: Any = None, archive: Any = None, entry: Any = None, command: Any = None, kind: Any = None
) -> AppRevision:
    """A new revision from the folder (the entry, command and kind kept unless given), run at once."""
    _must(user, app)
    errors: dict[str, list[str]] = {}
    current = app.revision
    kind = app.kind if kind in (None, "") else kind
    entry = (current.entry if current else "") if entry is None else entry
    command = (current.command if current else "") if command is None else command
    kind, entry, command = _code(kind, entry, command if kind == AppKind.CUSTOM else "", errors)
    if kind:
        _check_program(kind, app.cluster, errors)
    if source in (None, "") and archive is None:
        # The folder the current revision came from, in the workspace of whoever published it: only they
        # publish from it again without naming it (another's workspace is not theirs to read).
        if current and current.source != "archive" and current.created_by_id == user.pk:
            source = current.source
        else:
            errors["source"] = [_("A folder of your personal workspace, or an archive.")]
    staged = _Staged(user, app.team.slug, app.name, source, archive, errors) if not errors.get("source") else None
    try:
        if staged is not None:
            _check_entry(staged.files, entry, staged.field, errors)
        if errors:
            raise ValidationError(errors)
        created: list[Path] = []
        try:
            with transaction.atomic():
                locked = _lock(app)
                if locked.kind != kind:
                    App.objects.filter(pk=locked.pk).update(kind=kind)
                    locked.kind = kind
                revision = _new_revision(locked, user, staged, kind, entry, command, created)
                published = _("Revision %(n)s was published.") % {"n": revision.number}
                _stop_run(locked, actor=user, reason="replaced", message=published)
                App.objects.filter(pk=locked.pk).update(status=AppStatus.ACTIVE)
                locked.status = AppStatus.ACTIVE
                _run(locked, revision)
        except BaseException:
            _remove(created)
            raise
    finally:
        if staged is not None:
            staged.discard()
    app.refresh_from_db()
    return revision


_RESTARTING_FIELDS = ("cpu", "memory", "gpu", "image", "env")


def app_update(*, user, app: App, **changes: Any) -> App:
    """Change an app's settings; a running app restarts when what its run uses changed."""
    _must(user, app)
    allowed = {"description", "cpu", "memory", "gpu", "image", "env", "secrets", "unset_secrets", "visibility",
               "shared_with", "idle_minutes"}  # fmt: skip
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError({name: [_("Not a field that can be changed.")] for name in unknown})
    errors: dict[str, list[str]] = {}
    with transaction.atomic():
        locked = _lock(app)
        fields: dict[str, Any] = {}
        if "description" in changes:
            if not isinstance(changes["description"], str) or len(changes["description"]) > 500:
                errors["description"] = [_("At most 500 characters.")]
            fields["description"] = changes["description"]
        if any(k in changes for k in ("cpu", "memory", "gpu", "image")):
            _cluster, image, gpu = _resources(
                user, locked.team, locked.cluster.name, changes.get("image", locked.image),
                changes.get("cpu", locked.cpu), changes.get("memory", locked.memory),
                changes.get("gpu", locked.gpu), errors,
            )  # fmt: skip
            fields.update(
                cpu=str(changes.get("cpu", locked.cpu)), memory=str(changes.get("memory", locked.memory)),
                gpu=gpu, image=image,
            )  # fmt: skip
        env = _variables(changes["env"], "env", errors) if "env" in changes else locked.env
        secrets = dict(locked.secrets)
        if "secrets" in changes:
            secrets.update(_variables(changes["secrets"], "secrets", errors))
        gone = changes.get("unset_secrets") or []
        if not isinstance(gone, list | tuple) or not all(isinstance(name, str) for name in gone):
            errors["unset_secrets"] = [_("A list of the secrets' names.")]
            gone = []
        for name in gone:
            secrets.pop(name, None)
        clash = sorted(set(env) & set(secrets))
        if clash:
            errors["secrets"] = [_("%(names)s is both a variable and a secret.") % {"names": ", ".join(clash)}]
        if "env" in changes:
            fields["env"] = env
        users = None
        if "visibility" in changes or "shared_with" in changes:
            visibility = changes.get("visibility", locked.visibility)
            shared = changes.get("shared_with")
            if shared is None and visibility == Visibility.SHARED:
                shared = list(locked.shared_with.values_list("username", flat=True))
            visibility, users = _visibility(visibility, shared, locked.team, errors)
            fields["visibility"] = visibility
        if "idle_minutes" in changes:
            fields["idle_minutes"] = _idle_minutes(changes["idle_minutes"], errors)
        if errors:
            raise ValidationError(errors)
        # What the run uses and changed: only then does a running app restart (a same value changes nothing).
        restart = any(getattr(locked, key) != fields[key] for key in _RESTARTING_FIELDS if key in fields)
        if secrets != locked.secrets:
            locked.secrets = secrets
            fields["secrets_encrypted"] = locked.secrets_encrypted
            restart = True
        for key, value in fields.items():
            setattr(locked, key, value)
        locked.save(update_fields=[*fields, "updated_at"])
        if users is not None:
            locked.shared_with.set(users)
        if restart and locked.job is not None and locked.job.state in ACTIVE and locked.revision is not None:
            _stop_run(locked, actor=user, reason="restarted", message=_("Its settings changed."))
            _run(locked, locked.revision)
    app.refresh_from_db()
    return app


def _run_again(user, app: App, *, restart: bool) -> App:
    _must(user, app)
    with transaction.atomic():
        locked = _lock(app)
        if not restart and locked.job is not None and locked.job.state in ACTIVE:
            raise AppActionRefused(_("The app is already running."))
        if locked.revision is None:
            raise AppActionRefused(_("The app has no revision: publish it first."))
        if restart:
            _stop_run(locked, actor=user, reason="restarted", message=_("Restarted by %(user)s.") % {"user": user})
        App.objects.filter(pk=locked.pk).update(status=AppStatus.ACTIVE)
        locked.status = AppStatus.ACTIVE
        _run(locked, locked.revision)
    app.refresh_from_db()
    return app


def app_start(*, user, app: App) -> App:
    """Start a stopped, sleeping or failed app on its current revision."""
    return _run_again(user, app, restart=False)


def app_restart(*, user, app: App) -> App:
    """A fresh run of the current revision (the running one stops)."""
    return _run_again(user, app, restart=True)


def app_stop(*, user, app: App) -> App:
    """Stop the app until someone starts it again (a visit does not wake it)."""
    _must(user, app)
    with transaction.atomic():
        locked = _lock(app)
        if locked.status == AppStatus.STOPPED and (locked.job is None or locked.job.state not in ACTIVE):
            raise AppActionRefused(_("The app is already stopped."))
        App.objects.filter(pk=locked.pk).update(status=AppStatus.STOPPED)
        _stop_run(locked, actor=user, reason="stopped", message=_("Stopped by %(user)s.") % {"user": user})
    app.refresh_from_db()
    return app


def app_delete(*, user, app: App) -> None:
    """Stop the app and delete it with its revisions' files; its past runs stay in the jobs list."""
    _must(user, app)
    with transaction.atomic():
        locked = _lock(app)
        _stop_run(locked, actor=user, reason="deleted", message=_("The app was deleted."))
        team, name = locked.team.slug, locked.name
        locked.delete()
        transaction.on_commit(lambda: shutil.rmtree(app_dir(team, name), ignore_errors=True))


# --- what the proxy and the clock do --------------------------------------------------------------------------


def app_wake(*, app: App) -> bool:
    """A request came for a sleeping app: start it (once, however many requests come). True if it started."""
    with transaction.atomic():
        locked = _lock(app)
        if locked.status != AppStatus.SLEEPING or locked.revision is None:
            return False
        if locked.job is not None and locked.job.state in ACTIVE:
            return False
        App.objects.filter(pk=locked.pk).update(status=AppStatus.ACTIVE)
        locked.status = AppStatus.ACTIVE
        try:
            _run(locked, locked.revision)
        except ValidationError as exc:  # the quota is used up, say: it stays asleep and says why
            App.objects.filter(pk=locked.pk).update(
                status=AppStatus.SLEEPING, message=_("It could not wake: %(why)s") % {"why": "; ".join(exc.messages)}
            )
            return False
    return True


def app_sleep(*, app: App, now=None) -> bool:
    """No request for its idle time: its run stops and the next request wakes it."""
    with transaction.atomic():
        locked = _lock(app)
        if locked.status != AppStatus.ACTIVE or locked.job is None or locked.job.state not in ACTIVE:
            return False
        minutes = locked.idle_minutes
        App.objects.filter(pk=locked.pk).update(status=AppStatus.SLEEPING)
        return _stop_run(locked, reason="idle", message=_("No request for %(n)s minutes: asleep.") % {"n": minutes})


def log_tail(job: Job, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's log ("" when the backend cannot say)."""
    try:
        data, _offset = job.cluster.backend().read_log(job.public_id, APP_TASK)
    except Exception:
        return ""
    text = data[-16384:].decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def app_fail_unhealthy(*, app: App, now=None) -> bool:
    """A run that did not answer its health check within EASYAI_APP_START_TIMEOUT: stopped, and the app failed
    with the last lines of its log."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(app)
        job = locked.job
        if job is None or job.state != JobState.RUNNING or locked.ready or locked.run_requested_at is None:
            return False
        waited = now - max(locked.run_requested_at, job.started_at or locked.run_requested_at)
        if waited < timedelta(seconds=settings.EASYAI_APP_START_TIMEOUT):
            return False
        tail = log_tail(job)
        message = _("It did not answer its health check within %(s)s seconds.") % {
            "s": int(settings.EASYAI_APP_START_TIMEOUT)
        }
        if tail:
            message += "\n" + tail
        stopped = _stop_run(locked, reason="unhealthy", message=message[:4000], event=Input.TIMEOUT)
        App.objects.filter(pk=locked.pk).update(message=message[:4000])
    return stopped


def app_run_ended(*, app: App) -> bool:
    """Its run ended without the app's say (its command exited, or someone stopped its job on the jobs page): the
    app records why, with the last lines of its log; a run stopped from outside leaves the app stopped."""
    job = app.job
    if job is None or job.state not in FINAL or app.message:
        return False
    why = job.message or job.get_state_display()
    if job.state == JobState.STOPPED:
        App.objects.filter(pk=app.pk, job=job).update(status=AppStatus.STOPPED, message=why[:4000])
        return True
    tail = log_tail(job)
    App.objects.filter(pk=app.pk, job=job).update(message=(f"{why}\n{tail}" if tail else why)[:4000])
    return True


def record_request(app_pk: int, when) -> None:
    App.objects.filter(pk=app_pk).update(last_request_at=when)


def record_ready(job_id: str) -> None:
    """Its run answered its health check for the first time: the start-up time, from the ask to now."""
    app = App.objects.filter(job__public_id=job_id, startup_seconds__isnull=True).first()
    if app is None or app.run_requested_at is None:
        return
    seconds = (timezone.now() - app.run_requested_at).total_seconds()
    App.objects.filter(pk=app.pk, startup_seconds__isnull=True).update(startup_seconds=round(seconds, 2))
