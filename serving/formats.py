"""Model formats: which files make a model of each format, and how a folder of files is checked and summed.

Pure functions over paths; the registry (``services.py``) calls them before it copies anything.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from clusters.backends.base import MODEL_FORMATS
from files import folders
from files.folders import CHUNK, MAX_FILES, FolderRefused, sha256_of  # noqa: F401 - the registry's names for them

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
    """(relative path, absolute path) of every regular file under ``folder``, sorted; symbolic links refused
    (``files/folders.py``: a link in a job's folder could point at the portal's secrets)."""
    return folders.walk(folder, too_many=_("More than %(max)s files: register the model's own folder.") % {"max": MAX_FILES})


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
