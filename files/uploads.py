"""Resumable uploads: a large file sent in chunks, each at the offset the portal says it has reached.

The protocol is tus's core (and S3 multipart's idea) in the portal's own API, ``/api/v1/uploads/``:

1. create: the target (space and path, resolved exactly as the files API resolves them), the total size and,
   optionally, the file's sha256 → an upload id, offset 0;
2. append: ``PATCH`` a chunk with ``Upload-Offset``; it is written only when that is the portal's offset
   (otherwise 409 with the offset it has), so a client that lost an answer asks (``HEAD``) and goes on from
   there, never writing a byte twice or leaving a gap;
3. the chunk that reaches the size completes it: the bytes are hashed, checked against the sha256 given
   (a mismatch refuses it and places nothing), and moved into place in one rename.

The bytes wait in the storage root's hidden staging area (``{root}/.uploads/{id}.part``): tasks mount
sub-paths of the root (workspaces, data, job folders), never the root itself, so no task sees a half file,
and the rename into a workspace stays on one file system. An upload belongs to its uploader alone (anyone
else gets 404); one untouched for ``EASYAI_UPLOAD_RESUME_HOURS`` expires, its bytes removed when anyone next
creates an upload or when it is asked for.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from files import services, spaces
from files.models import Upload
from files.paths import PathRefused, parts_of, safe_join
from files.selectors import CHUNK, Entry, describe
from files.services import FileConflictError, UploadTooLargeError
from teams.exceptions import ActionRefused

STAGING = ".uploads"
# What a client is told to send per PATCH: large enough that a request's cost is small beside its bytes,
# small enough that a broken connection loses little. Any size up to what is left is accepted.
CHUNK_SIZE = 8 * 2**20
# Uploads one user may have open at once: each may hold up to the upload limit in the staging area.
MAX_OPEN_PER_USER = 20
EXPIRED_SWEEP_BATCH = 200


class UploadOffsetError(ActionRefused):
    """A chunk sent for another offset than the upload's (or while another chunk is being written)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class UploadDigestError(Exception):
    """The complete file's sha256 is not the one given when the upload was created: nothing is placed."""


class TooManyUploadsError(ActionRefused):
    """The user has MAX_OPEN_PER_USER uploads open already."""


def staging_dir() -> Path:
    return spaces.storage_root() / STAGING


def staged_path(upload: Upload) -> Path:
    return staging_dir() / f"{upload.id.hex}.part"


def _lifetime() -> timedelta:
    return timedelta(hours=int(settings.EASYAI_UPLOAD_RESUME_HOURS))


def _target(user, space: str, path: str) -> tuple[spaces.Location, Path]:
    """The target as the files API resolves it (the same spaces and checks), refused early where it can be."""
    location = spaces.workspace_location(user, space, path)
    if not parts_of(location.relative):
        raise PathRefused(_("Name the file to upload."))
    target = safe_join(location.root, location.relative)
    if target.is_dir():
        raise FileConflictError(_("A folder with this name exists."))
    return location, target


def _normalised_digest(sha256: str) -> str:
    digest = (sha256 or "").strip().lower()
    if digest and (len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest)):
        raise PathRefused(_("sha256 must be 64 hexadecimal digits."))  # a 400 under the request's fields
    return digest


def upload_create(*, user, space: str, path: str, size: int, sha256: str = "") -> Upload:
    """Open an upload of ``size`` bytes to ``space:path``; its bytes follow in chunks (upload_append)."""
    uploads_expire()
    _target(user, space, path)
    digest = _normalised_digest(sha256)
    limit = services.upload_max_bytes()
    if size < 0:
        raise PathRefused(_("The size cannot be negative."))
    if size > limit:
        raise UploadTooLargeError(_("The file is larger than the limit of %(limit)s bytes.") % {"limit": limit})
    if Upload.objects.filter(owner=user, state=Upload.State.RECEIVING).count() >= MAX_OPEN_PER_USER:
        raise TooManyUploadsError(
            _("You have %(count)d uploads open; finish or cancel one first.") % {"count": MAX_OPEN_PER_USER}
        )
    upload = Upload(
        id=uuid.uuid4(),
        owner=user,
        space=space,
        path="/".join(parts_of(path)),
        size=size,
        sha256=digest,
        expires=timezone.now() + _lifetime(),
    )
    staging = staging_dir()
    staging.mkdir(mode=0o700, exist_ok=True)
    # The file first: a row never names bytes that cannot be written.
    with open(staged_path(upload), "xb"):
        pass
    upload.save(force_insert=True)
    return upload


def upload_for(user, upload_id: uuid.UUID | str) -> Upload:
    """The user's own upload, or 404: another user's and an expired one (removed now) are not there."""
    upload = Upload.objects.filter(pk=upload_id, owner=user).first() if _is_uuid(upload_id) else None
    if upload is None:
        raise Http404(_("No such upload."))
    if upload.expires <= timezone.now():
        upload_remove(upload=upload)
        raise Http404(_("No such upload."))
    return upload


def _is_uuid(value: uuid.UUID | str) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Appended:
    upload: Upload
    entry: Entry | None = None  # the placed file, once complete
    created: bool = False  # whether the placed file is new (else it replaced one)
    sha256: str = ""  # the placed file's digest


def upload_append(*, user, upload_id: uuid.UUID | str, offset: int, chunks: Iterable[bytes]) -> Appended:
    """Write a chunk at ``offset`` (which must be the upload's); the chunk that reaches the size places the file.

    A chunk whose connection breaks keeps what arrived: the offset moves on to it, and the client resumes from
    there. A chunk at the full size with an empty body places a complete upload again (a retried last chunk,
    or after a refused placement such as a folder in the way was cleared).
    """
    upload = upload_for(user, upload_id)
    if upload.state == Upload.State.COMPLETE:
        raise UploadOffsetError(_("This upload is complete already."), upload.size)
    try:
        handle = open(staged_path(upload), "r+b")  # noqa: SIM115 - held across the lock, closed below
    except FileNotFoundError:
        upload_remove(upload=upload)
        raise Http404(_("No such upload.")) from None
    with handle:
        # One writer per upload: a second request for the same upload waits for no one, it is told the offset.
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadOffsetError(_("Another chunk of this upload is being written."), upload.offset) from None
        upload.refresh_from_db()
        if offset != upload.offset:
            raise UploadOffsetError(
                _("The upload is at offset %(offset)d, not %(given)d.") % {"offset": upload.offset, "given": offset},
                upload.offset,
            )
        written = _write_chunk(handle, upload, chunks)
        reached = offset + written
        moved = Upload.objects.filter(pk=upload.pk, offset=offset, state=Upload.State.RECEIVING).update(
            offset=reached, expires=timezone.now() + _lifetime()
        )
        if not moved:  # removed (expired, cancelled) while we wrote
            raise Http404(_("No such upload."))
        upload.offset = reached
        if reached < upload.size:
            return Appended(upload)
        return _complete(user, upload, handle)


def _write_chunk(handle, upload: Upload, chunks: Iterable[bytes]) -> int:
    """Append the chunk at the upload's offset; what a broken connection delivered is kept and counted."""
    start = upload.offset
    room = upload.size - start
    handle.truncate(start)  # bytes of a write that never got recorded (a crash between write and update)
    handle.seek(start)
    written = 0
    try:
        for piece in chunks:
            if written + len(piece) > room:
                handle.truncate(start)
                raise UploadTooLargeError(
                    _("The chunk goes past the upload's size of %(size)d bytes.") % {"size": upload.size}
                )
            handle.write(piece)
            written += len(piece)
    except UploadTooLargeError:
        raise
    except Exception:
        # The client went away mid-chunk: keep what came, so a resume goes on from there.
        handle.flush()
        os.fsync(handle.fileno())
        Upload.objects.filter(pk=upload.pk, offset=start, state=Upload.State.RECEIVING).update(offset=start + written)
        raise
    handle.flush()
    os.fsync(handle.fileno())
    return written


def _sha256_of(handle) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while block := handle.read(CHUNK):
        digest.update(block)
    return digest.hexdigest()


def _complete(user, upload: Upload, handle) -> Appended:
    """Check the whole file's digest, then move it into place in one rename (still holding the upload's lock)."""
    actual = _sha256_of(handle)
    if upload.sha256 and actual != upload.sha256:
        upload_remove(upload=upload)
        raise UploadDigestError(
            _("The file's sha256 is %(actual)s, not %(expected)s as given: it was not saved; upload it again.")
            % {"actual": actual, "expected": upload.sha256}
        )
    # Resolved again: the target may have changed (a folder made there, a link swapped in) since the upload began.
    location, target = _target(user, upload.space, upload.path)
    services._make_folders(target.parent, location.root)
    staged = staged_path(upload)
    os.chmod(staged, 0o644)  # tasks (maybe another uid on NFS) must read it
    created = not target.exists()
    _place(staged, target)
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.COMPLETE, offset=upload.size)
    upload.state = Upload.State.COMPLETE
    return Appended(upload, describe(location, target), created, actual)


def _place(staged: Path, target: Path) -> None:
    try:
        os.replace(staged, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # The staging area and the target on different file systems: copy beside the target, then rename there.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(staged, "rb") as source:
            shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    os.unlink(staged)


def upload_cancel(*, user, upload_id: uuid.UUID | str) -> None:
    """Drop an upload and its bytes (a complete one's file stays where it was placed)."""
    upload_remove(upload=upload_for(user, upload_id))


def upload_remove(*, upload: Upload) -> None:
    """Remove an upload's bytes and its row (the uploader's cancel, expiry, an operator's action)."""
    try:
        os.unlink(staged_path(upload))
    except FileNotFoundError:
        pass
    Upload.objects.filter(pk=upload.pk).delete()


def uploads_expire(now: datetime | None = None) -> int:
    """Remove uploads untouched past their expiry, and their bytes; returns how many went."""
    expired = list(Upload.objects.filter(expires__lte=now or timezone.now()).order_by("expires")[:EXPIRED_SWEEP_BATCH])
    for upload in expired:
        upload_remove(upload=upload)
    return len(expired)
