"""Reading files and folders: listings, single files, zip archives."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from django.utils.translation import gettext as _

from files.paths import is_inside, safe_join
from files.spaces import Location

CHUNK = 1024 * 1024


class NotAFolderError(Exception):
    """A folder was expected (a zip of a file)."""


class NotAFileError(Exception):
    """A regular file was expected (a download of a folder, a device, a pipe)."""


@dataclass(frozen=True)
class Entry:
    name: str
    type: str  # "file", "dir", or "other" (devices, pipes, links leading out of the root, hard-linked files)
    size: int | None  # bytes, files only
    modified: datetime | None
    path: str  # as the user sees it, relative to the space (or the job's outputs)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "modified": self.modified.isoformat() if self.modified else None,
            "path": self.path,
        }


def _entry_from_stat(name: str, path: str, st: os.stat_result | None) -> Entry:
    if st is None:
        return Entry(name, "other", None, None, path)
    modified = datetime.fromtimestamp(st.st_mtime, tz=UTC)
    if stat.S_ISDIR(st.st_mode):
        return Entry(name, "dir", None, modified, path)
    if stat.S_ISREG(st.st_mode) and not _hard_linked(st):
        return Entry(name, "file", st.st_size, modified, path)
    return Entry(name, "other", None, modified, path)


def _hard_linked(st: os.stat_result) -> bool:
    """A file with a second name: a task may have linked a file it can read and its job's viewers may not
    (another name cannot be traced to where it lies), so it is refused as a link leading out is."""
    return st.st_nlink > 1


def _stat_inside(path: str, root_real: str, *, is_link: bool) -> os.stat_result | None:
    """stat() following links, but None for links that lead out of the root (their target is not ours to show)."""
    if is_link and not is_inside(os.path.realpath(path), root_real):
        return None
    try:
        return os.stat(path)
    except OSError:
        return None  # a dangling link, or gone since the listing


def describe(location: Location, target: Path) -> Entry:
    """The entry for a resolved path under the location's root."""
    root_real = os.path.realpath(location.root)
    relative = os.path.relpath(target, root_real)
    relative = "" if relative == "." else Path(relative).as_posix()
    name = target.name if relative else (location.prefix.rsplit("/", 1)[-1] if location.prefix else "")
    return _entry_from_stat(name, location.shown(relative), _stat_inside(str(target), root_real, is_link=False))


def list_folder(location: Location, folder: Path) -> list[Entry]:
    """The folder's entries, folders first, then by name."""
    root_real = os.path.realpath(location.root)
    base = os.path.relpath(folder, root_real)
    base = "" if base == "." else Path(base).as_posix()
    entries = []
    with os.scandir(folder) as scan:
        for item in scan:
            relative = f"{base}/{item.name}" if base else item.name
            st = _stat_inside(item.path, root_real, is_link=item.is_symlink())
            entries.append(_entry_from_stat(item.name, location.shown(relative), st))
    entries.sort(key=lambda e: (e.type != "dir", e.name.casefold(), e.name))
    return entries


def resolve(location: Location) -> Path:
    """The location's path, resolved and checked to lie inside its root (PathRefused otherwise)."""
    return safe_join(location.root, location.relative)


def open_file(path: Path) -> BinaryIO:
    """Open a resolved regular file for reading.

    O_NOFOLLOW refuses a symlink swapped in since the path was checked, and
    O_NONBLOCK keeps a named pipe from hanging the request before it is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except IsADirectoryError:
        raise NotAFileError(_("This is a folder, not a file.")) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFileError(_("This is not a regular file."))
        if _hard_linked(st):
            raise NotAFileError(_("This file has another name (a hard link); it is not served."))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# --- zip archives ---------------------------------------------------------------------


class ZipSink:
    """A write-only, unseekable file: zipfile then writes data descriptors and we pass bytes on as they come."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(folders: list[tuple[str, Path]]) -> Iterator[bytes]:
    """A zip of folder trees, produced while it is sent (no temporary copy).

    ``folders`` pairs a prefix inside the archive ("" or "master-0/") with a
    folder; each folder is also the root its links must stay in. Links that
    lead out are left out and linked folders are not descended into (no
    loops); files are read up to their size when found, so a file that a
    running task still writes does not corrupt the archive.
    """
    sink = ZipSink()
    # Deflate at level 1: model files are large and mostly incompressible, logs shrink well anyway.
    with zipfile.ZipFile(
        sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, strict_timestamps=False
    ) as archive:
        for top, folder in folders:
            root_real = os.path.realpath(folder)
            if top:
                archive.writestr(zipfile.ZipInfo(top), b"")
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
                dirnames.sort()
                relative_dir = os.path.relpath(dirpath, folder)
                prefix = top if relative_dir == "." else f"{top}{Path(relative_dir).as_posix()}/"
                if relative_dir != "." and not dirnames and not filenames:
                    archive.writestr(zipfile.ZipInfo(prefix), b"")  # keep empty folders
                for name in sorted(filenames):
                    if "\\" in name:
                        continue  # an unzipper on Windows would read it as folders, even as "..\\"
                    yield from _zip_one(archive, sink, os.path.join(dirpath, name), prefix + name, root_real)
    data = sink.take()
    if data:
        yield data


def _set_fast_compression(info: zipfile.ZipInfo) -> None:
    # Python 3.13 names the attribute compress_level; 3.11 and 3.12 read _compresslevel.
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 1)


def _zip_one(archive: zipfile.ZipFile, sink: ZipSink, path: str, arcname: str, root_real: str) -> Iterator[bytes]:
    real = os.path.realpath(path)
    if not is_inside(real, root_real):
        return
    try:
        source = open_file(Path(real))
    except (OSError, NotAFileError):
        return  # gone since the walk, or not a regular file
    with source:
        st = os.fstat(source.fileno())
        info = zipfile.ZipInfo.from_file(real, arcname, strict_timestamps=False)
        info.compress_type = zipfile.ZIP_DEFLATED
        _set_fast_compression(info)
        info.file_size = st.st_size
        remaining = st.st_size
        with archive.open(info, "w", force_zip64=st.st_size > 2**30) as dest:
            while remaining > 0:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    break
                dest.write(chunk)
                remaining -= len(chunk)
                data = sink.take()
                if data:
                    yield data
    data = sink.take()
    if data:
        yield data
