"""What a step's job leaves behind, read from the storage root once it ended: its output parameters (files it
wrote), the built-ins (``stdout``: its leader task's last log line, ``exit_code``, ``job_id``) and its artifacts
(folders under its model_dir or share_dir, with a digest of their content for caching).

On the local backend the storage root is this host's folder; on Kubernetes it is the cluster's NFS share,
mounted on the portal as the files pages read it (``EASYAI_STORAGE_ROOT``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from clusters.backends.contract import storage
from jobs import spec as job_spec
from jobs.models import Job, Task

MAX_PARAMETER_BYTES = 64 * 1024  # an output parameter is a value, not a file to pass around: artifacts are
LOG_TAIL_BYTES = 64 * 1024


class OutputMissingError(Exception):
    """A declared output the step's job did not write."""


def _root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def _inside(job_id: str, relative: str) -> Path:
    """The path of a step's declared output (``model_dir/x``), never outside the job's folder."""
    base = (_root() / job_id).resolve()
    path = (base / relative).resolve()
    if base not in path.parents and path != base:
        raise OutputMissingError(_("%(path)s leads outside the job's folders") % {"path": relative})
    return path


def leader_task(job: Job, tasks: list[Task]) -> Task | None:
    """The task whose log and exit code speak for the job: its leader role's first, else its first task."""
    leader = job_spec.LEADER_ROLE.get(job.framework)
    ordered = sorted(tasks, key=lambda t: (t.role != leader, t.role, t.index))
    return ordered[0] if ordered else None


def last_log_line(job_id: str, task_name: str) -> str:
    path = storage.task_log_path(_root(), job_id, task_name)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return ""
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def read_parameter(job_id: str, relative: str) -> str:
    path = _inside(job_id, relative)
    try:
        if path.is_symlink() or not path.is_file():
            raise OutputMissingError(_("%(path)s was not written") % {"path": relative})
        with open(path, "rb") as handle:
            data = handle.read(MAX_PARAMETER_BYTES + 1)
    except OSError as exc:
        raise OutputMissingError(
            _("%(path)s cannot be read: %(error)s") % {"path": relative, "error": exc.strerror}
        ) from None
    if len(data) > MAX_PARAMETER_BYTES:
        raise OutputMissingError(_("%(path)s is over 64 KiB: pass it as an artifact") % {"path": relative})
    return data.decode("utf-8", "replace").strip()


def folder_digest(path: Path) -> str:
    """sha256 over every file's relative path and content, in order; links are not followed."""
    digest = hashlib.sha256()
    if path.is_file() and not path.is_symlink():
        digest.update(b"file\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for folder, dirs, files in os.walk(path, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            if full.is_symlink():
                continue
            digest.update(str(full.relative_to(path)).encode() + b"\0")
            with open(full, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def collect(step_spec: dict, job: Job, tasks: list[Task]) -> dict:
    """The outputs of one ended job of a step: {"parameters": {...}, "artifacts": {...}, "digests": {...}}.
    Raises OutputMissingError for a declared output it did not write."""
    leader = leader_task(job, tasks)
    parameters: dict[str, str | int | None] = {
        "job_id": job.public_id,
        "exit_code": leader.exit_code if leader is not None else None,
        "stdout": last_log_line(job.public_id, leader.name) if leader is not None else "",
    }
    declared = step_spec.get("outputs") or {}
    for name, relative in (declared.get("parameters") or {}).items():
        parameters[name] = read_parameter(job.public_id, relative)
    artifacts: dict[str, str] = {}
    digests: dict[str, str] = {}
    for name, relative in (declared.get("artifacts") or {}).items():
        path = _inside(job.public_id, relative)
        if path.is_symlink() or not path.exists():
            raise OutputMissingError(
                _("artifact %(name)s: %(path)s was not written") % {"name": name, "path": relative}
            )
        artifacts[name] = f"{job.public_id}/{relative}"
        digests[name] = folder_digest(path)
    return {"parameters": parameters, "artifacts": artifacts, "digests": digests}


def fan_in(per_item: list[dict]) -> dict:
    """A foreach step's outputs: each name's values as a list, in item order."""
    result: dict[str, dict[str, list]] = {"parameters": {}, "artifacts": {}, "digests": {}}
    for kind in result:
        names: list[str] = []
        for outputs in per_item:
            names += [n for n in outputs.get(kind, {}) if n not in names]
        for name in names:
            result[kind][name] = [outputs.get(kind, {}).get(name) for outputs in per_item]
    return result
