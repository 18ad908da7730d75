"""Joining user-given paths to a storage root without ever leaving it.

Every path that comes from a URL, a form or an upload passes through
``safe_join`` before it touches the file system. Django has already decoded
percent escapes by the time a path reaches us (``%2e%2e`` arrives as ``..``),
so the checks here see what the file system will see.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathRefused(ValueError):  # noqa: N818 - reads as what happened, like JobActionRefused
    """A path that is not allowed: it would leave its root, or it is malformed."""


def _has_control_character(text: str) -> bool:
    # NUL truncates paths in C calls; other control characters (newlines above all)
    # would end up in Content-Disposition headers and listings.
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def parts_of(relative: str) -> tuple[str, ...]:
    """The components of a relative path, refusing absolute paths, ``..`` and control characters."""
    if not isinstance(relative, str):
        raise PathRefused("The path must be text.")
    if _has_control_character(relative):
        raise PathRefused("The path contains a control character.")
    if relative.startswith(("/", "\\")):
        raise PathRefused("Absolute paths are not allowed; give a path relative to the folder.")
    if "\\" in relative:
        # Stored verbatim, a backslash would become a folder separator (even "..\\") where the file is unzipped.
        raise PathRefused("A backslash is not allowed in a file or folder name.")
    parts = tuple(part for part in PurePosixPath(relative).parts if part not in ("", "."))
    if ".." in parts:
        raise PathRefused("'..' is not allowed in a path.")
    return parts


def is_inside(path: str | Path, root_real: str) -> bool:
    """Whether an already resolved path is the root or lies below it."""
    path = str(path)
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def safe_join(root: Path, relative: str) -> Path:
    """The resolved path of ``relative`` under ``root``; PathRefused when it would leave the root.

    Symlinks are resolved, intermediate ones included, and the result must lie
    inside the root's own resolved path. A path that does not exist yet (an
    upload's target) is resolved as far as it exists; a dangling symlink is
    judged by where it points.
    """
    parts = parts_of(relative)
    root_real = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(root_real, *parts)) if parts else root_real
    if not is_inside(resolved, root_real):
        raise PathRefused("The path leads outside its folder (through a symbolic link).")
    return Path(resolved)


def relative_to_root(path: Path, root: Path) -> str:
    """``path`` (resolved, inside ``root``) as a POSIX path relative to the root; "" for the root."""
    relative = os.path.relpath(path, os.path.realpath(root))
    return "" if relative == "." else PurePosixPath(*Path(relative).parts).as_posix()
