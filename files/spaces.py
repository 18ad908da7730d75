"""Where the browsable folders lie: the workspaces, the data space and a job's outputs.

Spaces (see ``clusters.backends.contract.storage``):

- ``personal``: ``{root}/notebook/{username}``, only its user reads and writes it;
- ``public``: ``{root}/notebook/public``, shared by every signed-in user of the
  platform, who may all read and write it (it belongs to no team: its path on
  shared storage has none);
- ``data``: ``{root}/data/{username}``, its user's training data: only they read and write it here, and their
  tasks see it as ``data_dir``, read-only.

A job's outputs form a small read-only tree: ``model_dir``, ``log_dir``,
``share_dir`` and ``summary_dir/<task name>``. The storage root is read from
settings at call time, so tests and deployments may move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from clusters.backends.contract import storage
from files.paths import PathRefused, parts_of
from jobs import selectors as job_selectors
from jobs.models import Job
from teams.permissions import Action, get_or_404

WORKSPACES = ("personal", "public", "data")

# A personal workspace is notebook/{username} (and the data space data/{username}): these names would make it
# the public workspace or a folder above it (Django's username rule allows "." and "..").
RESERVED_USERNAMES = frozenset({"public", ".", ".."})


class UnknownSpaceError(LookupError):
    """A workspace or job output that does not exist."""


class WorkspaceUnavailableError(Exception):
    """The user's personal workspace cannot be used (a reserved username)."""


@dataclass(frozen=True)
class Location:
    """A place inside one browsable root, which nothing may leave."""

    root: Path  # the folder paths are joined to
    relative: str  # the path under the root given by the user ("" for the root itself)
    prefix: str  # how the root is shown ("" for a workspace, "summary_dir/master-0" for a job output)

    def shown(self, relative: str) -> str:
        """A path under the root as the user sees it (with the prefix)."""
        return "/".join(part for part in (self.prefix, relative) if part)


def storage_root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def workspace_root(user, space: str) -> Path:
    """The workspace's (or data space's) folder, created on first use."""
    if space in ("personal", "data"):
        if user.username in RESERVED_USERNAMES or "/" in user.username:
            raise WorkspaceUnavailableError(
                _("The username %(name)s cannot have a personal workspace; use the public one.")
                % {"name": user.username}
            )
        root = storage.personal_workspace(storage_root(), user.username) if space == "personal" else data_space(user)
    elif space == "public":
        root = storage.public_workspace(storage_root())
    else:
        raise UnknownSpaceError(_("No such workspace: %(space)s.") % {"space": space})
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_space(user) -> Path:
    """The user's data (``data_dir`` of their jobs); not created here."""
    return storage_root() / "data" / user.username


def workspace_location(user, space: str, relative: str) -> Location:
    return Location(workspace_root(user, space), relative, "")


# --- job outputs ----------------------------------------------------------------------


def summary_tasks(job: Job) -> list[str]:
    """The tasks that have (or will have) a summary_dir: the job's tasks and any found on disk."""
    names = {task.name for task in job.tasks.all()}
    job_dir = storage.job_dir(storage_root(), job.public_id)
    try:
        for child in job_dir.iterdir():
            if child.name not in storage.JOB_OUTPUTS and (child / "summary_dir").is_dir():
                names.add(child.name)
    except OSError:
        pass  # no outputs on disk yet
    return sorted(name for name in names if _plain_name(name))


def _plain_name(name: str) -> bool:
    try:
        return len(parts_of(name)) == 1
    except PathRefused:
        return False


@dataclass(frozen=True)
class OutputTree:
    """What a path under a job's outputs names: a virtual folder or a place under one output."""

    virtual: str | None  # "" for the list of outputs, "summary_dir" for the list of tasks
    location: Location | None


def job_output_tree(job: Job, path: str) -> OutputTree:
    """Split ``model_dir/a/b`` or ``summary_dir/<task>/a`` into an output root and a path under it."""
    parts = parts_of(path)
    if not parts:
        return OutputTree("", None)
    output, rest = parts[0], parts[1:]
    if output not in storage.JOB_OUTPUTS:
        raise UnknownSpaceError(_("No such output: %(output)s.") % {"output": output})
    if output == "summary_dir":
        if not rest:
            return OutputTree("summary_dir", None)
        task_name, rest = rest[0], rest[1:]
        if task_name not in summary_tasks(job):
            raise UnknownSpaceError(_("The job has no task %(task)s.") % {"task": task_name})
        root = storage.output_dir(storage_root(), job.public_id, output, task_name)
        return OutputTree(None, Location(root, "/".join(rest), f"summary_dir/{task_name}"))
    root = storage.output_dir(storage_root(), job.public_id, output)
    return OutputTree(None, Location(root, "/".join(rest), output))


def job_output_roots(job: Job) -> list[tuple[str, str | None, Path]]:
    """(output, task name or None, folder) for every output of the job, in a stable order."""
    root = storage_root()
    result: list[tuple[str, str | None, Path]] = [
        ("model_dir", None, storage.output_dir(root, job.public_id, "model_dir"))
    ]
    result += [
        ("summary_dir", task, storage.output_dir(root, job.public_id, "summary_dir", task))
        for task in summary_tasks(job)
    ]
    result += [(name, None, storage.output_dir(root, job.public_id, name)) for name in ("log_dir", "share_dir")]
    return result


def visible_job(user, job_id: str) -> Job:
    """The job if the user may view it (its outputs go with it); 404 otherwise."""
    return get_or_404(job_selectors.jobs_visible(user).prefetch_related("tasks"), user, Action.VIEW, public_id=job_id)


def output_folders(job: Job, virtual: str) -> list[tuple[str, str | None, Path]]:
    """(shown path, task, folder) of the outputs under a virtual folder ("" for all, "summary_dir")."""
    result = []
    for output, task, folder in job_output_roots(job):
        shown = f"{output}/{task}" if task else output
        if virtual == "" or output == virtual:
            result.append((shown, task, folder))
    return result


def output_zip_folders(job: Job, virtual: str) -> list[tuple[str, Path]]:
    """(prefix in the archive, folder) for a zip of a virtual folder: every output, or every task's summary_dir."""
    return [
        (shown.removeprefix(f"{virtual}/") + "/", folder)
        for shown, _task, folder in output_folders(job, virtual)
        if folder.is_dir()
    ]
