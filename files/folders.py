"""Folders of files that the portal copies in on a user's behalf: walked without following links, summed,
and unpacked from a zip archive with nothing escaping the target.

The model registry copies a job's model folder or a pushed archive into its store; apps copy a workspace
folder or a deployed archive into their revisions. A job or a user owns the folder they point at: a link in
it could point anywhere on the portal's host (its secrets), so a folder with one is refused, and nothing is
ever followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import IO

from django.utils.translation import gettext as _

from files.paths import PathRefused, parts_of

MAX_FILES = 10_000
CHUNK = 1024 * 1024


class FolderRefused(ValueError):  # noqa: N818 - reads as what happened
    """The folder (or archive) cannot be taken as it is; the message says why."""


def walk(folder: Path, *, max_files: int = MAX_FILES, too_many: str = "") -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every regular file under ``folder``, sorted; links refused (the caller
    makes sure no link leads to ``folder`` itself: ``files.paths.safe_join`` or ``no_link_below``)."""
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
        if len(found) > max_files:
            raise FolderRefused(too_many or _("More than %(max)s files.") % {"max": max_files})
    return sorted(found)


def no_link_below(root: Path, parts: tuple[str, ...] | list[str]) -> Path:
    """``root`` joined with ``parts``, refused when any of the parts is a symbolic link (nothing followed)."""
    path = root
    for part in parts:
        path = path / part
        if os.path.islink(path):
            raise FolderRefused(_("%(path)s is a symbolic link.") % {"path": "/".join(parts)})
    return path


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


def _archive_refused(max_bytes: int) -> FolderRefused:
    return FolderRefused(_("The archive unpacks to more than %(size)s bytes.") % {"size": f"{max_bytes:,}"})


def unzip_into(archive: IO[bytes], into: Path, *, max_files: int = MAX_FILES, max_bytes: int) -> None:
    """A zip archive's files under ``into``: no absolute paths, no '..', no links, at most ``max_bytes``; any
    archive it cannot read (encrypted, an unknown compression, a file and a folder of one name) refused."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > max_files:
                raise FolderRefused(_("Too many files in the archive."))
            if sum(m.file_size for m in members) > max_bytes:
                raise _archive_refused(max_bytes)
            written = 0
            for member in members:
                if member.is_dir():
                    continue
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise FolderRefused(_("%(name)s is a symbolic link.") % {"name": member.filename})
                try:
                    parts = parts_of(member.filename)
                except PathRefused as exc:
                    raise FolderRefused(f"{member.filename}: {exc}") from None
                if not parts:
                    continue
                target = into.joinpath(*parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as source, open(target, "xb") as sink:
                        # The sizes in the directory are the archive's word: what is written is counted too.
                        while chunk := source.read(CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise _archive_refused(max_bytes)
                            sink.write(chunk)
                except (OSError, RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:
                    raise FolderRefused(
                        _("%(name)s cannot be unpacked: %(why)s") % {"name": member.filename, "why": exc}
                    ) from None
    except zipfile.BadZipFile:
        raise FolderRefused(_("Not a zip archive.")) from None


def copy_folder(
    folder: Path, into: Path, *, max_files: int = MAX_FILES, max_bytes: int, too_many: str = ""
) -> list[dict]:
    """Copy a folder's files under ``into`` in one pass, each opened beside its folder's descriptor: a link
    anywhere (even one swapped in while the copy runs) is refused, never followed; sizes are counted as they
    are copied. Returns {"path", "size", "sha256"} per file, sorted by path."""
    try:
        top = os.lstat(folder)
    except FileNotFoundError:
        raise FolderRefused(_("There is no such folder.")) from None
    if stat.S_ISLNK(top.st_mode) or not stat.S_ISDIR(top.st_mode):
        raise FolderRefused(_("This is not a folder."))
    into.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    total = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(folder, follow_symlinks=False):
        here = Path(dirpath).relative_to(folder)
        for name in sorted(dirnames + filenames):
            relative = (here / name).as_posix()
            mode = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise FolderRefused(_("%(path)s is a symbolic link: copy the file itself there.") % {"path": relative})
            if stat.S_ISDIR(mode):
                (into / relative).mkdir(exist_ok=True)
                continue
            if not stat.S_ISREG(mode):
                raise FolderRefused(_("%(path)s is not a regular file.") % {"path": relative})
            if len(entries) >= max_files:
                raise FolderRefused(too_many or _("More than %(max)s files.") % {"max": max_files})
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
            except OSError:
                raise FolderRefused(_("%(path)s changed while it was copied.") % {"path": relative}) from None
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "rb") as source, open(into / relative, "xb") as sink:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        raise FolderRefused(_("The folder holds more than %(n)s bytes.") % {"n": f"{max_bytes:,}"})
                    digest.update(chunk)
                    sink.write(chunk)
            entries.append({"path": relative, "size": size, "sha256": digest.hexdigest()})
    return sorted(entries, key=lambda entry: entry["path"])
