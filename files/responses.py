"""HTTP answers shared by the API and the pages: file downloads, zip downloads, error statuses."""

from __future__ import annotations

import errno
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from rest_framework.request import Request

from files import services
from files.paths import PathRefused
from files.selectors import NotAFileError, NotAFolderError, open_file, zip_stream
from files.services import FileConflictError, NoFilesError, UploadTooLargeError
from files.spaces import UnknownSpaceError, WorkspaceUnavailableError

# Types a browser may show in the page itself. Anything else asked for inline is
# sent as plain text, so an uploaded HTML or SVG file never runs script in the
# portal's origin.
INLINE_TYPES = {
    "application/json",
    "application/pdf",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "image/bmp",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/plain",
    "video/mp4",
    "video/webm",
}


def _harden(response):
    # Served files are user content: no sniffing into HTML, and a sandbox even if a browser renders it.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


def file_download(path: Path, *, inline: bool = False) -> FileResponse:
    """A resolved regular file as an attachment, or shown in the browser when it is a safe type."""
    source = open_file(path)
    if not inline:
        return _harden(FileResponse(source, as_attachment=True, filename=path.name))
    guessed, _encoding = mimetypes.guess_type(path.name)
    content_type = guessed if guessed in INLINE_TYPES else "text/plain"
    if content_type.startswith("text/") or content_type == "application/json":
        content_type += "; charset=utf-8"
    return _harden(FileResponse(source, as_attachment=False, filename=path.name, content_type=content_type))


def zip_download(folders: list[tuple[str, Path]], filename: str) -> StreamingHttpResponse:
    """Folder trees as one zip, streamed while it is made (see selectors.zip_stream)."""
    for _top, folder in folders:
        if not folder.is_dir():
            raise NotAFolderError(_("Only folders can be downloaded as a zip."))
    stream = zip_stream(folders)
    first = next(stream)  # the first file is opened now, while an error status can still be sent
    response = StreamingHttpResponse(_chain(first, stream), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return _harden(response)


def _chain(first: bytes, rest):
    yield first
    yield from rest


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    field: str = "path"  # the input it is about, for 400 answers


def error_status(exc: Exception) -> Refusal | None:
    """Why a file operation was refused, as an HTTP status and a message; None for errors that are bugs."""
    found = _status_and_message(exc)
    if found is None:
        return None
    return Refusal(*found, field="file" if isinstance(exc, NoFilesError) else "path")


def _status_and_message(exc: Exception) -> tuple[int, str] | None:
    if isinstance(exc, (PathRefused, NoFilesError)):
        return 400, str(exc)
    if isinstance(exc, UnknownSpaceError):
        return 404, str(exc)
    if isinstance(exc, WorkspaceUnavailableError):
        return 403, str(exc)
    if isinstance(exc, (NotAFileError, NotAFolderError, FileConflictError)):
        return 409 if isinstance(exc, FileConflictError) else 400, str(exc)
    if isinstance(exc, UploadTooLargeError):
        return 413, str(exc)
    if isinstance(exc, LengthRequiredError):
        return 411, str(exc)
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return 404, _("No such file or folder.")
    if isinstance(exc, PermissionError):
        return 403, _("The file system refused access.")
    if isinstance(exc, OSError):
        # e.g. a name too long: report the reason, never the absolute path.
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
        return 400, _("The file system refused this: %(reason)s.") % {"reason": reason}
    return None


def flag(request: HttpRequest | Request, name: str) -> bool:
    return request.GET.get(name, "").lower() in {"1", "true", "yes", "on"}


def declared_length(request: HttpRequest | Request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class LengthRequiredError(Exception):
    """A body sent without Content-Length (chunked): Django would read it as empty."""


def check_declared_length(request: HttpRequest | Request) -> None:
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise LengthRequiredError(_("Send the upload with a Content-Length header."))
    # Refuse before reading a byte: a 20 GiB body is not read only to be thrown away.
    limit = services.upload_max_bytes()
    if declared_length(request) > limit:
        raise services.UploadTooLargeError(
            _("The upload is larger than the limit of %(limit)s bytes.") % {"limit": limit}
        )


def zip_name(*parts: str) -> str:
    return "-".join(part.strip("/").replace("/", "-") for part in parts if part.strip("/")) + ".zip"
