"""A task's log over HTTP, and the reads the log socket shares with it.

The log file (``clusters.backends.contract.storage.task_log_path``) is the source of truth; every
read goes through the cluster's backend (``read_log``), which tails that file
locally and reads the pod log, then the persisted copy, on Kubernetes.
Offsets are byte offsets into the log, so a client that pages with
``next_offset`` (or reconnects a socket with ``?offset=``) never sees a line
twice or misses one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.backends.base import Backend, BackendError, ObservedState
from clusters.backends.contract.quantity import whole_number
from jobs import selectors
from jobs.models import Job, Task
from teams import permissions
from teams.permissions import Action

PAGE_DEFAULT = 1 << 20  # bytes in one page when no limit is asked
PAGE_MAX = 8 << 20
DOWNLOAD_CHUNK = 1 << 20
TAIL_LINES = 1000  # what a log socket sends first when no offset is asked
TAIL_READ = 4 << 20  # how much a tail search reads at a time

# A task in one of these states writes no more log.
TASK_ENDED = frozenset({Task.State.SUCCEEDED, Task.State.FAILED, Task.State.STOPPED})


class TaskNotFoundError(Exception):
    """The job has no task of that name; the message names the tasks it has."""


@dataclass
class TaskEnd:
    state: str
    exit_code: int | None
    reason: str = ""

    def as_frame(self) -> dict[str, Any]:
        return {"type": "end", "state": self.state, "exit_code": self.exit_code, "reason": self.reason}


# --- shared with the log socket ----------------------------------------------------------------------


def job_for(user, public_id: str, action: Action = Action.VIEW) -> Job:
    """The job, through the permission module: Http404 when not visible, PermissionDenied when not allowed."""
    return permissions.get_or_404(selectors.jobs_visible(user), user, action, public_id=public_id)


def task_of(job: Job, name: str) -> Task:
    """The task named ``role-index`` in the job, or TaskNotFoundError naming the ones it has."""
    role, _, index = name.rpartition("-")
    task = None
    number = whole_number(index, 9)
    if role and number is not None:
        task = Task.objects.filter(job=job, role=role, index=number).first()
    if task is None:
        names = [
            f"{r}-{i}" for r, i in Task.objects.filter(job=job).order_by("role", "index").values_list("role", "index")
        ]
        raise TaskNotFoundError(f"Job {job.public_id} has no task {name!r}; its tasks: {', '.join(names) or 'none'}.")
    return task


def task_has_ended(job: Job, task: Task) -> bool:
    return task.state in TASK_ENDED or job.is_final


def utf8_complete(data: bytes) -> int:
    """How many leading bytes of data are whole UTF-8 characters: a chunk cut inside a character keeps
    its first bytes back for the next chunk instead of showing two replacement characters."""
    size = len(data)
    for back in range(1, min(4, size) + 1):
        byte = data[size - back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        need = 1 if byte >= 0xF8 else 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 1
        return size - back if need > back else size
    return size  # not UTF-8 there: let the decoder replace it


def tail_offset(backend: Backend, job_id: str, task_name: str, lines: int = TAIL_LINES) -> int:
    """The byte offset where the last ``lines`` lines of the log start (0 for a shorter log).

    The protocol reads forward only, so this reads the log once, keeping the line starts it may need.
    """
    if lines <= 0:
        _, end = _end_of(backend, job_id, task_name)
        return end
    starts: list[int] = [0]  # offsets where a line starts; the last one may be the (empty) end of the log
    offset = 0
    while True:
        data, next_offset = backend.read_log(job_id, task_name, offset, TAIL_READ)
        if not data:
            break
        found: list[int] = []
        position = len(data)
        # Only the last lines+1 line starts of the chunk can matter.
        while len(found) <= lines:
            position = data.rfind(b"\n", 0, position)
            if position < 0:
                break
            found.append(offset + position + 1)
        starts.extend(reversed(found))
        starts = starts[-(lines + 2) :]
        offset = next_offset
    if starts and starts[-1] == offset:
        starts.pop()  # the log ends with a newline: no line starts there
    return starts[-lines] if len(starts) >= lines else 0


def _end_of(backend: Backend, job_id: str, task_name: str) -> tuple[bytes, int]:
    offset = 0
    while True:
        data, next_offset = backend.read_log(job_id, task_name, offset, TAIL_READ)
        if not data:
            return b"", offset
        offset = next_offset


def task_end(job: Job, task: Task) -> TaskEnd | None:
    """How the task ended, or None while it may still write.

    The database's word first (the sync loop recorded it); before the next sync pass, the backend's own
    observation of the task. Reported, never written: only the state machine changes states.
    """
    task.refresh_from_db(fields=["state", "exit_code", "reason"])
    if task.state in TASK_ENDED:
        return TaskEnd(task.state, task.exit_code, task.reason)
    try:
        observation = job.cluster.backend().observe([job.public_id])[job.public_id]
    except (BackendError, NotImplementedError, OSError):
        observation = None
    if observation is not None:
        for seen in observation.tasks:
            if (
                seen.role == task.role
                and seen.index == task.index
                and seen.state
                not in (
                    ObservedState.PENDING,
                    ObservedState.RUNNING,
                )
            ):
                return TaskEnd(seen.state, seen.exit_code, seen.reason)
        if observation.state == ObservedState.MISSING and not observation.tasks:
            # The sync pass deletes a job's objects only after it recorded their end: a pass that ran between
            # the read above and this observation has left its word in the database.
            task.refresh_from_db(fields=["state", "exit_code", "reason"])
            if task.state in TASK_ENDED:
                return TaskEnd(task.state, task.exit_code, task.reason)
            return TaskEnd(ObservedState.MISSING, None, "the cluster has no such job any more")
    job.refresh_from_db(fields=["state"])
    if job.is_final:
        return TaskEnd(task.state, task.exit_code, task.reason or job.state)
    return None


# --- the HTTP API --------------------------------------------------------------------------------------


class PlainTextRenderer(BaseRenderer):
    """The default form of a log page; error bodies become their message."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, dict) and "detail" in data:
            return f"{data['detail']}\n".encode()
        return f"{data}\n".encode() if data is not None else b""


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"must be a whole number of bytes, not {raw!r}"]}) from None
    if value < 0:
        raise ValidationError({name: ["must not be negative"]})
    return min(value, maximum) if maximum is not None else value


class _TaskLogView(APIView):
    renderer_classes = [PlainTextRenderer, JSONRenderer]

    def _job_and_task(self, request: Request, id: str, task: str) -> tuple[Job, Task]:
        job = job_for(request.user, id)
        try:
            return job, task_of(job, task)
        except TaskNotFoundError as exc:
            raise Http404(str(exc)) from None


class TaskLogView(_TaskLogView):
    """One page of a task's log, from a byte offset."""

    @extend_schema(
        parameters=[
            OpenApiParameter("offset", int, description="byte offset to read from (default 0)"),
            OpenApiParameter(
                "limit", int, description=f"at most this many bytes (default {PAGE_DEFAULT}, up to {PAGE_MAX})"
            ),
            OpenApiParameter("format", str, enum=["txt", "json"], description="json: the page as an object"),
        ],
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR, description="the bytes; headers X-Next-Offset, X-Task-State, X-Log-Complete"
            ),
            (200, "application/json"): OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, id: str, task: str) -> HttpResponse:
        offset = _int_param(request, "offset", 0)
        limit = _int_param(request, "limit", PAGE_DEFAULT, PAGE_MAX) or PAGE_DEFAULT
        job, task_row = self._job_and_task(request, id, task)
        backend = job.cluster.backend()
        ended = task_has_ended(job, task_row)
        try:
            data, next_offset = backend.read_log(job.public_id, task_row.name, offset, limit)
            at_end = len(data) < limit or not backend.read_log(job.public_id, task_row.name, next_offset, 1)[0]
        except BackendError as exc:
            return Response({"detail": f"The cluster did not answer: {exc}"}, status=502)
        as_json = request.accepted_renderer.format == "json"
        if as_json and not (ended and at_end):
            # Text is cut at a whole character; the rest comes with the next page.
            whole = utf8_complete(data)
            at_end = at_end and whole == len(data)
            next_offset -= len(data) - whole
            data = data[:whole]
        complete = ended and at_end
        headers = {
            "X-Next-Offset": str(next_offset),
            "X-Task-State": task_row.state,
            "X-Log-Complete": str(complete).lower(),
        }
        if as_json:
            body = {
                "data": data.decode("utf-8", errors="replace"),
                "offset": offset,
                "next_offset": next_offset,
                "complete": complete,
                "task_state": task_row.state,
            }
            return Response(body, headers=headers)
        response = HttpResponse(data, content_type="text/plain; charset=utf-8")
        for name, value in headers.items():
            response[name] = value
        return response


class TaskLogDownloadView(_TaskLogView):
    """The whole log as a file (what was written so far, for a running task)."""

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.BINARY})
    def get(self, request: Request, id: str, task: str) -> StreamingHttpResponse:
        job, task_row = self._job_and_task(request, id, task)
        backend = job.cluster.backend()

        def chunks() -> Iterator[bytes]:
            offset = 0
            while True:
                data, offset = backend.read_log(job.public_id, task_row.name, offset, DOWNLOAD_CHUNK)
                if not data:
                    return
                yield data

        response = StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{job.public_id}-{task_row.name}.log"'
        response["X-Task-State"] = task_row.state
        return response
