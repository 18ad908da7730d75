"""Model formats: which files make a model of each format, and how a folder of files is checked and summed.

Pure functions over paths; the registry (``services.py``) calls them before it copies anything.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from clusters.backends.base import MODEL_FORMATS

# format -> the file names (globs, matched against the base name) that make it, as the model server loads them.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "sklearn": ("*.joblib", "*.pkl", "*.pickle"),
    "xgboost": ("*.json", "*.ubj", "*.bst", "*.model"),
    "onnx": ("*.onnx",),
    "torchscript": ("*.pt", "*.pth"),
    "pytorch": ("*.pt", "*.pth"),
    "tensorflow": ("saved_model.pb", "saved_model.pbtxt", "*.keras", "*.h5"),
    "huggingface": ("config.json",),
    "custom": ("model.py",),
}
METRICS_FILE = "metrics.json"  # written by a job beside its model: {"accuracy": 0.93, ...}
MAX_FILES = 10_000
CHUNK = 1024 * 1024


class FolderRefused(ValueError):  # noqa: N818 - reads as what happened
    """The folder cannot be registered as it is (the message says why)."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def format_problem(value: object) -> str:
    if value not in MODEL_FORMATS:
        return _("Unknown format %(value)r: one of %(formats)s.") % {
            "value": value,
            "formats": ", ".join(MODEL_FORMATS),
        }
    return ""


def model_files(paths: list[str], model_format: str) -> list[str]:
    """The relative paths that make a model of this format (empty: the folder holds none)."""
    patterns = MODEL_FILES[model_format]
    return [p for p in paths if any(fnmatch.fnmatch(p.rsplit("/", 1)[-1], pat) for pat in patterns)]


def walk(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every regular file under ``folder``, sorted; symbolic links refused.

    A job owns the folder it wrote: a link in it could point anywhere on the portal's host (its secrets), so a
    folder with one is not registered; nothing is followed.
    """
    found: list[tuple[str, Path]] = []
    try:
        top = os.lstat(folder)
    except FileNotFoundError:
        raise FolderRefused(_("There is no such folder.")) from None
    if stat.S_ISLNK(top.st_mode) or not stat.S_ISDIR(top.st_mode):
        raise FolderRefused(_("This is not a folder."))
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            mode = os.lstat(full).st_mode
            relative = full.relative_to(folder).as_posix()
            if stat.S_ISLNK(mode):
                raise FolderRefused(_("%(path)s is a symbolic link: copy the file itself there.") % {"path": relative})
            if stat.S_ISREG(mode):
                found.append((relative, full))
            elif not stat.S_ISDIR(mode):
                raise FolderRefused(_("%(path)s is not a regular file.") % {"path": relative})
        if len(found) > MAX_FILES:
            raise FolderRefused(_("More than %(max)s files: register the model's own folder.") % {"max": MAX_FILES})
    return sorted(found)


def sha256_of(path: Path) -> tuple[int, str]:
    """(size, hex digest), read without following a link."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def check_folder(files: list[tuple[str, Path]], model_format: str, where: str) -> None:
    """FolderRefused unless the files hold a model of the format."""
    paths = [relative for relative, _full in files if relative != METRICS_FILE]
    if not paths:
        raise FolderRefused(_("There are no model files in %(where)s.") % {"where": where})
    if not model_files(paths, model_format):
        raise FolderRefused(
            _("There are no %(format)s model files (%(patterns)s) in %(where)s.")
            % {"format": model_format, "patterns": ", ".join(MODEL_FILES[model_format]), "where": where}
        )
