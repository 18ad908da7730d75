"""The resumable uploads API, ``/api/v1/uploads/`` (the protocol is in ``files/uploads.py``).

- ``POST uploads/`` ``{"space", "path", "size", "sha256"?}`` → 201, the upload (``id``, ``offset`` 0, ``url``);
- ``HEAD``/``GET uploads/{id}/`` → its offset (``Upload-Offset``, ``Upload-Length`` headers; JSON for GET);
- ``PATCH uploads/{id}/`` with ``Upload-Offset: N`` and the chunk as the raw body → 200 with the new offset, and
  the placed file once the last chunk is in; 409 with the portal's offset when N is not it;
- ``DELETE uploads/{id}/`` → 204, the upload and its bytes dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import path, reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from files import uploads
from files.api import api_errors
from files.models import Upload
from files.responses import check_declared_length
from files.selectors import CHUNK
from files.spaces import WORKSPACES

OFFSET_HEADER = "Upload-Offset"
LENGTH_HEADER = "Upload-Length"


class UploadCreateSerializer(serializers.Serializer):
    space = serializers.CharField(max_length=32, help_text=f"one of {', '.join(WORKSPACES)}")
    path = serializers.CharField(max_length=4096, help_text="the file's path under the space")
    size = serializers.IntegerField(min_value=0, help_text="the whole file's size in bytes")
    sha256 = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        allow_blank=True,
        help_text="the whole file's sha256: checked when the last chunk is in, nothing placed on a mismatch",
    )


class UploadSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField(help_text="where to PATCH chunks, HEAD the offset and DELETE the upload")
    space = serializers.CharField()
    path = serializers.CharField()
    size = serializers.IntegerField()
    offset = serializers.IntegerField(help_text="bytes the portal has: the next chunk starts here")
    sha256 = serializers.CharField(help_text="the digest given, or once complete the file's")
    state = serializers.CharField(help_text="receiving or complete")
    expires = serializers.DateTimeField(help_text="when it is dropped unless a chunk comes; each chunk extends it")
    chunk_size = serializers.IntegerField(help_text="a good size for each chunk")
    file = serializers.DictField(required=False, help_text="the placed file's entry, once complete")
    created = serializers.BooleanField(required=False, help_text="whether the placed file is new")


class OffsetConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    offset = serializers.IntegerField()


def _as_dict(upload: Upload, **extra: Any) -> dict:
    return {
        "id": str(upload.id),
        "url": reverse("api-upload", kwargs={"upload_id": upload.id}),
        "space": upload.space,
        "path": upload.path,
        "size": upload.size,
        "offset": upload.offset,
        "sha256": upload.sha256,
        "state": upload.state,
        "expires": upload.expires.isoformat(),
        "chunk_size": uploads.CHUNK_SIZE,
        **extra,
    }


def _headers(upload: Upload) -> dict[str, str]:
    return {OFFSET_HEADER: str(upload.offset), LENGTH_HEADER: str(upload.size), "Cache-Control": "no-store"}


class UploadsView(APIView):
    """Start a resumable upload of a large file into a workspace or your data; its chunks follow by PATCH."""

    @extend_schema(request=UploadCreateSerializer, responses={201: UploadSerializer})
    def post(self, request: Request) -> Response:
        """Open an upload: the target and the size (and the sha256 to check) → its id, at offset 0."""
        given = UploadCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        with api_errors():
            upload = uploads.upload_create(user=request.user, **given.validated_data)
        body = _as_dict(upload)
        return Response(body, status=status.HTTP_201_CREATED, headers={**_headers(upload), "Location": body["url"]})


UPLOAD_ID = OpenApiParameter("upload_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class UploadView(APIView):
    """One of your uploads: its offset, the next chunk, or cancel it. Anyone else's is not found."""

    @extend_schema(parameters=[UPLOAD_ID], responses={200: UploadSerializer})
    def get(self, request: Request, upload_id: str) -> Response:
        """Where the upload stands (also in the Upload-Offset header; HEAD gives the headers alone)."""
        upload = uploads.upload_for(request.user, upload_id)
        return Response(_as_dict(upload), headers=_headers(upload))

    @extend_schema(
        parameters=[
            UPLOAD_ID,
            OpenApiParameter(
                OFFSET_HEADER, int, OpenApiParameter.HEADER, required=True, description="where this chunk starts"
            ),
        ],
        request={"application/octet-stream": OpenApiTypes.BINARY},  # application/offset+octet-stream (tus) too
        responses={
            200: UploadSerializer,
            409: OpenApiResponse(OffsetConflictSerializer, description="the offset is not the portal's"),
        },
    )
    def patch(self, request: Request, upload_id: str) -> Response:
        """Append a chunk (the raw body) at Upload-Offset; the one that reaches the size places the file."""
        offset = _offset_of(request)
        try:
            with api_errors():
                check_declared_length(request)
                done = uploads.upload_append(
                    user=request.user, upload_id=upload_id, offset=offset, chunks=_body_chunks(request)
                )
        except uploads.UploadOffsetError as exc:
            return Response(
                {"detail": str(exc), "offset": exc.offset},
                status=status.HTTP_409_CONFLICT,
                headers={OFFSET_HEADER: str(exc.offset), "Cache-Control": "no-store"},
            )
        except uploads.UploadDigestError as exc:
            raise ValidationError({"sha256": [str(exc)]}) from None
        extra: dict[str, Any] = {}
        if done.entry is not None:
            extra = {"file": done.entry.as_dict(), "created": done.created, "sha256": done.sha256}
        return Response(_as_dict(done.upload, **extra), headers=_headers(done.upload))

    @extend_schema(parameters=[UPLOAD_ID], responses={204: None})
    def delete(self, request: Request, upload_id: str) -> Response:
        """Cancel the upload: its bytes are dropped (a complete one's placed file stays)."""
        uploads.upload_cancel(user=request.user, upload_id=upload_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _offset_of(request: Request) -> int:
    text = request.headers.get(OFFSET_HEADER, "").strip()
    if not text.isdigit():
        raise ValidationError({OFFSET_HEADER: [_("Send the chunk's offset as a whole number of bytes.")]})
    return int(text)


def _body_chunks(request: Request) -> Iterator[bytes]:
    # Read as it arrives, never whole: a chunk may be larger than DATA_UPLOAD_MAX_MEMORY_SIZE.
    stream = request.stream
    if stream is None:  # an empty body
        return
    while piece := stream.read(CHUNK):
        yield piece


urlpatterns = [
    path("uploads/", UploadsView.as_view(), name="api-uploads"),
    path("uploads/<uuid:upload_id>/", UploadView.as_view(), name="api-upload"),
]
