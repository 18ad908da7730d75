"""The files API: workspaces (read and write) and job outputs (read-only).

Authentication is the project's: a token needs no CSRF token; a browser
session does (DRF's SessionAuthentication checks it on every write).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from files import selectors, services, spaces
from files.paths import parts_of
from files.responses import check_declared_length, error_status, file_download, flag, zip_download, zip_name
from files.selectors import CHUNK
from files.spaces import Location
from jobs.models import Job


class FilesError(APIException):
    """A file operation refused, with the status that says why."""

    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        super().__init__(detail)


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn file-system and path errors into clear API answers: never a 500 for bad input."""
    try:
        yield
    except Exception as exc:
        refusal = error_status(exc)
        if refusal is None:
            raise
        if refusal.status == status.HTTP_400_BAD_REQUEST:
            raise ValidationError({refusal.field: [refusal.message]}) from None
        raise FilesError(refusal.status, refusal.message) from None


def wants_zip(request: HttpRequest | Request) -> bool:
    archive = request.GET.get("archive", "")
    if archive and archive != "zip":
        raise ValidationError({"archive": [_("Only archive=zip is supported.")]})
    return archive == "zip"


PATH_PARAMETERS = [
    OpenApiParameter("space", str, OpenApiParameter.PATH, enum=list(spaces.WORKSPACES)),
    OpenApiParameter("path", str, OpenApiParameter.PATH, description="a path under the workspace"),
]


class WorkspaceFilesView(APIView):
    """Your personal workspace, the public one every signed-in user shares, and your data (your jobs' data_dir,
    read-only in their tasks)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            *PATH_PARAMETERS,
            OpenApiParameter("inline", bool, description="show a file in the browser instead of downloading it"),
            OpenApiParameter("archive", str, enum=["zip"], description="download a folder as a zip"),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request, space: str, path: str = "") -> Response:
        """A folder's listing, or a file's content."""
        with api_errors():
            location = spaces.workspace_location(request.user, space, path)
            target = selectors.resolve(location)
            if wants_zip(request):
                name = zip_name(space, path) if path.strip("/") else zip_name(space)
                return zip_download([("", target)], name)
            if target.is_dir():
                return Response(listing(location, target, space=space))
            return file_download(target, inline=flag(request, "inline"))

    @extend_schema(
        parameters=[*PATH_PARAMETERS, OpenApiParameter("mkdir", bool, description="create a folder instead")],
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
    )
    def put(self, request: Request, space: str, path: str = "") -> Response:
        """Upload a file from the raw body (replacing one there), or create a folder with ?mkdir=1."""
        with api_errors():
            location = spaces.workspace_location(request.user, space, path)
            if flag(request, "mkdir"):
                entry, created = services.folder_create(location=location)
            else:
                check_declared_length(request)
                entry, created = services.file_upload(location=location, chunks=_body_chunks(request))
        return Response(entry.as_dict(), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        parameters=PATH_PARAMETERS,
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        },
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, space: str, path: str = "") -> Response:
        """Upload one or more files (multipart field ``file``) into a folder."""
        with api_errors():
            check_declared_length(request)
            location = spaces.workspace_location(request.user, space, path)
            entries = services.files_upload(location=location, uploads=request.FILES.getlist("file"))
        return Response({"files": [entry.as_dict() for entry in entries]}, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            *PATH_PARAMETERS,
            OpenApiParameter("recursive", bool, description="delete a folder and everything in it"),
        ],
        responses={204: None},
    )
    def delete(self, request: Request, space: str, path: str = "") -> Response:
        """Delete a file or an empty folder (?recursive=1 for a whole tree)."""
        with api_errors():
            location = spaces.workspace_location(request.user, space, path)
            services.path_delete(location=location, recursive=flag(request, "recursive"))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _body_chunks(request: Request) -> Iterator[bytes]:
    # request.stream reads the body as it arrives: DATA_UPLOAD_MAX_MEMORY_SIZE applies
    # only to request.body, and the body is never held in memory whole.
    stream = request.stream
    if stream is None:  # an empty body
        return
    while chunk := stream.read(CHUNK):
        yield chunk


def listing(location: Location, folder: Path, **extra: str) -> dict:
    return {
        **extra,
        "path": location.shown("/".join(parts_of(location.relative))),
        "entries": [entry.as_dict() for entry in selectors.list_folder(location, folder)],
    }


# --- job outputs ------------------------------------------------------------------------


class JobOutputsView(APIView):
    """A job's outputs, read-only: model_dir, summary_dir/<task>, log_dir, share_dir."""

    @extend_schema(
        parameters=[
            OpenApiParameter("job_id", str, OpenApiParameter.PATH),
            OpenApiParameter(
                "path",
                str,
                OpenApiParameter.PATH,
                description="model_dir/..., summary_dir/<task>/..., log_dir/..., share_dir/...",
            ),
            OpenApiParameter("inline", bool, description="show a file in the browser instead of downloading it"),
            OpenApiParameter("archive", str, enum=["zip"], description="download a folder as a zip"),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request, job_id: str, path: str = "") -> Response:
        """The list of outputs, a folder's listing, a file's content, or a folder as a zip."""
        job = spaces.visible_job(request.user, job_id)
        with api_errors():
            tree = spaces.job_output_tree(job, path)
            if tree.virtual is not None:
                folders = spaces.output_folders(job, tree.virtual)
                if wants_zip(request):
                    name = zip_name(job.public_id, tree.virtual or "outputs")
                    return zip_download(spaces.output_zip_folders(job, tree.virtual), name)
                if tree.virtual == "":
                    return Response(
                        {
                            "job": job.public_id,
                            "path": "",
                            "outputs": [output_entry(job, shown, task, folder) for shown, task, folder in folders],
                        }
                    )
                return Response(
                    {
                        "job": job.public_id,
                        "path": tree.virtual,
                        "entries": [
                            selectors.describe(Location(folder, "", shown), folder).as_dict()
                            for shown, _task, folder in folders
                            if folder.is_dir()
                        ],
                    }
                )
            location = tree.location
            target = selectors.resolve(location)
            if wants_zip(request):
                return zip_download([("", target)], zip_name(job.public_id, location.shown(location.relative)))
            if target.is_dir():
                return Response(listing(location, target, job=job.public_id))
            return file_download(target, inline=flag(request, "inline"))


def output_entry(job: Job, shown: str, task: str | None, folder: Path) -> dict:
    exists = folder.is_dir()
    url = reverse("api-job-output", kwargs={"job_id": job.public_id, "path": f"{shown}/"})
    return {
        "output": shown.split("/", 1)[0],
        "task": task,
        "path": shown,
        "exists": exists,
        "url": url,
        "archive_url": f"{url}?archive=zip",
    }
