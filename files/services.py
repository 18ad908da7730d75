"""Changing workspace files: upload, create a folder, delete.

Job outputs are never changed here: tasks alone write them.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

from files.paths import PathRefused, is_inside, parts_of, safe_join
from files.selectors import Entry, describe
from files.spaces import Location


class FileConflictError(Exception):
    """The path is taken by something of the other kind (a folder where a file goes, a non-empty folder)."""


class UploadTooLargeError(Exception):
    """An upload above EASYAI_UPLOAD_MAX_BYTES."""


class NoFilesError(Exception):
    """An upload form sent without any file."""


def upload_max_bytes() -> int:
    return int(settings.EASYAI_UPLOAD_MAX_BYTES)


def _recheck(path: Path, root: Path) -> None:
    # A task may create a link between our check and our write: check the real place again.
    if not is_inside(os.path.realpath(path), os.path.realpath(root)):
        raise PathRefused(_("The path leads outside its folder (through a symbolic link)."))


def _make_folders(folder: Path, root: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FileConflictError(_("A part of the path is a file, not a folder.")) from None
    _recheck(folder, root)


def file_upload(*, location: Location, chunks: Iterable[bytes], max_bytes: int | None = None) -> tuple[Entry, bool]:
    """Write a file from chunks, all or nothing; returns its entry and whether it is new.

    The bytes go to a temporary file in the target's folder, which then replaces
    the target in one rename: readers see the old file or the whole new one,
    never a half-written one, and a failed upload leaves nothing behind.
    """
    if not parts_of(location.relative):
        raise PathRefused(_("Name the file to upload."))
    limit = upload_max_bytes() if max_bytes is None else max_bytes
    target = safe_join(location.root, location.relative)
    if target.is_dir():
        raise FileConflictError(_("A folder with this name exists."))
    _make_folders(target.parent, location.root)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise UploadTooLargeError(
                        _("The file is larger than the limit of %(limit)s bytes.") % {"limit": limit}
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; tasks (maybe another uid on NFS) must read it
        created = not target.exists()
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return describe(location, target), created


def files_upload(*, location: Location, uploads: list[UploadedFile]) -> list[Entry]:
    """Save uploaded files into the location's folder, each all or nothing."""
    if not uploads:
        raise NoFilesError(_("Choose at least one file."))
    folder = parts_of(location.relative)
    entries = []
    for upload in uploads:
        # Django keeps only the last component of a client's file name; refuse anything else left over.
        if len(parts_of(upload.name or "")) != 1:
            raise PathRefused(_("A file name may not contain a folder: %(name)s.") % {"name": upload.name})
        target = Location(location.root, "/".join((*folder, upload.name)), location.prefix)
        entry, _created = file_upload(location=target, chunks=upload.chunks())
        entries.append(entry)
    return entries


def folder_create(*, location: Location) -> tuple[Entry, bool]:
    """Create a folder (and its parents); returns its entry and whether it is new."""
    if not parts_of(location.relative):
        raise PathRefused(_("Name the folder to create."))
    target = safe_join(location.root, location.relative)
    if target.exists() and not target.is_dir():
        raise FileConflictError(_("A file with this name exists."))
    created = not target.exists()
    _make_folders(target, location.root)
    return describe(location, target), created


def path_delete(*, location: Location, recursive: bool = False) -> None:
    """Delete a file, an empty folder, or (recursive) a whole tree; never the root.

    A symbolic link is removed itself, wherever it points: its target is never
    touched, so even a link leading out of the workspace can be cleaned up.
    """
    parts = parts_of(location.relative)
    if not parts:
        raise PathRefused(_("The workspace itself cannot be deleted."))
    parent = safe_join(location.root, "/".join(parts[:-1]))
    target = parent / parts[-1]
    if target.is_symlink():
        target.unlink()
        return
    if not target.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or folder")
    if target.is_dir():
        if recursive:
            # rmtree removes links inside the tree without following them.
            shutil.rmtree(target)
            return
        try:
            target.rmdir()
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileConflictError(
                    _("The folder is not empty; delete it recursively to remove everything in it.")
                ) from None
            raise
        return
    target.unlink()
