"""Websockets of a task: its live log, an interactive shell and an SSH tunnel (wire protocol: docs/websockets.md).

Both authorise on connect through ``teams.permissions`` and then only relay:
the log socket relays what the backend reads from the persisted log (the file
is the source of truth, so a client that reconnects with ``?offset=`` loses
and repeats nothing); the shell socket relays bytes between the browser's
terminal and the backend's ShellSession; the SSH socket relays an SSH connection's raw bytes between the client's
``ssh`` (through ``easyai ssh-proxy``) and the task's SSH server, which accepts only the connecting user's own
keys. None changes a job. A shell or an SSH connection opens in a running task, or in one held for debugging
after its command failed (``Job.held_until`` still ahead).

A refused socket is accepted, told why in an ``error`` frame, and closed with
a 4xxx code (accepting first is the only way a browser gets to read a reason):

    4400 bad request  4401 not signed in  4403 not allowed  4404 no such job or task
    4409 the task is not running (shell, SSH)  4410 access withdrawn while open  4412 you have no SSH key (SSH)
    4502 the cluster failed us

An open socket asks the permission module again every EASYAI_WS_RECHECK_SECONDS: when its user may no
longer do what the socket does (a share revoked, a member removed, an account deactivated) it is closed
with 4410, and a shell's session ends with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.selectors import ssh_key_lines
from clusters.backends.base import BackendError
from clusters.backends.contract.quantity import whole_number
from jobs import services
from jobs.logs_api import (
    TAIL_LINES,
    TaskEnd,
    TaskNotFoundError,
    job_for,
    tail_offset,
    task_end,
    task_has_ended,
    task_of,
    utf8_complete,
)
from jobs.models import Job, ShellSession, Task
from jobs.streams import StoppedError, hand_over
from teams.permissions import Action
from teams.tokens import token_for_key

log = logging.getLogger(__name__)

FRAME_BYTES = 64 * 1024  # log bytes in one frame at most: a JSON frame stays well under clients' 1 MiB limit
QUEUE_CHUNKS = 64  # chunks read ahead of a slow client; the reading thread waits beyond that
BATCH_BYTES = 4 * FRAME_BYTES  # waiting chunks joined before they are cut into frames
REFOLLOW_AFTER_S = 1.0  # a follow that ended while the task had not (no pod yet) is retried this often
SHELL_READ_S = 0.1

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_NOT_RUNNING = 4409
CLOSE_REVOKED = 4410
CLOSE_NO_SSH_KEY = 4412
CLOSE_BACKEND = 4502


class RefusedError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _resolve(user, public_id: str, task_name: str, action: Action) -> tuple[Job, Task]:
    """The job and task the user may act on, or RefusedError with the close code and the reason."""
    if not (user is not None and user.is_authenticated):
        raise RefusedError(CLOSE_UNAUTHENTICATED, "Sign in, or present an API token (Authorization: Token <key>).")
    try:
        job = job_for(user, public_id, action)
    except Http404:
        raise RefusedError(CLOSE_NOT_FOUND, f"No job {public_id} that you may see.") from None
    except PermissionDenied:
        raise RefusedError(
            CLOSE_FORBIDDEN, "Only the job's owner, a team admin or a platform admin may open a shell in it."
        ) from None
    try:
        task = task_of(job, task_name)
    except TaskNotFoundError as exc:
        raise RefusedError(CLOSE_NOT_FOUND, str(exc)) from None
    return job, task


def _presented_token(scope: dict[str, Any]) -> str | None:
    """The API token the handshake presented (the header, else ?token=), as easyai_site.ws_auth reads it."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "token":
                return parts[1]
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[-1] if values else None


def _signed_in_still(scope: dict[str, Any], user_pk: Any) -> bool:
    """Whether what signed the socket in still does: its API token (not revoked nor expired), or its session."""
    key = _presented_token(scope)
    if key:
        token = token_for_key(key)
        return token is not None and token.user_id == user_pk
    session = scope.get("session")
    session_key = getattr(session, "session_key", None)
    if session is None or not session_key or settings.SESSION_ENGINE.endswith("signed_cookies"):
        return True  # nothing kept on the server to check again
    return bool(session.exists(session_key))


def _still_allowed(scope: dict[str, Any], user_pk: Any, public_id: str, task_name: str, action: Action) -> None:
    """RefusedError (4410, with the reason) unless the user, read afresh, may still do what the socket does."""
    # A fresh user: the one in the scope caches its teams and grants for as long as the socket lives.
    user = get_user_model().objects.filter(pk=user_pk).first()
    if user is None or not user.is_active:
        raise RefusedError(CLOSE_REVOKED, "Your account was deactivated or removed.")
    if not _signed_in_still(scope, user_pk):
        raise RefusedError(CLOSE_REVOKED, "Your sign-in ended: the token was revoked or expired, or you signed out.")
    try:
        _resolve(user, public_id, task_name, action)
    except RefusedError as refused:
        if refused.code in (CLOSE_NOT_FOUND, CLOSE_FORBIDDEN):
            raise RefusedError(CLOSE_REVOKED, f"Your access to job {public_id} was withdrawn.") from None
        raise RefusedError(CLOSE_REVOKED, refused.reason) from None


def recheck_seconds() -> float:
    return float(settings.EASYAI_WS_RECHECK_SECONDS)


def _client_address(scope: dict[str, Any]) -> str:
    # The server puts the peer here; behind a proxy, daphne --proxy-headers puts X-Forwarded-For here instead.
    client = scope.get("client")
    return str(client[0]) if client else ""


class _TaskSocket(AsyncWebsocketConsumer):
    action = Action.VIEW

    job: Job
    task: Task

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        await self.accept()
        try:
            self.job, self.task = await database_sync_to_async(_resolve)(
                self.scope.get("user"), kwargs["job_id"], kwargs["task"], self.action
            )
            await self.start()
        except RefusedError as refused:
            log.info("%s refused %s: %s", type(self).__name__, self.scope.get("path"), refused.reason)
            await self.refuse(refused.code, refused.reason)
            return
        self.rechecker = asyncio.create_task(self._recheck(self.scope["user"].pk, kwargs["job_id"], kwargs["task"]))

    async def start(self) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        """Stop relaying (the socket is being closed from this side)."""
        raise NotImplementedError

    async def _recheck(self, user_pk: Any, public_id: str, task_name: str) -> None:
        """Ask the permission module again every few seconds; close with 4410 once the answer is no."""
        while True:
            await asyncio.sleep(recheck_seconds())
            try:
                await database_sync_to_async(_still_allowed)(self.scope, user_pk, public_id, task_name, self.action)
            except RefusedError as refused:
                log.info("%s closed %s: %s", type(self).__name__, self.scope.get("path"), refused.reason)
                await self.end()
                try:
                    await self.refuse(refused.code, refused.reason)
                except Exception:
                    pass  # the client went at the same moment
                return
            except Exception:
                # The database is briefly away: keep the socket, ask again next time.
                log.warning("rechecking %s failed", self.scope.get("path"), exc_info=True)

    async def stop_rechecking(self) -> None:
        rechecker = getattr(self, "rechecker", None)
        if rechecker is not None and not rechecker.done() and rechecker is not asyncio.current_task():
            rechecker.cancel()
            try:
                await rechecker
            except asyncio.CancelledError:
                pass

    async def refuse(self, code: int, reason: str) -> None:
        await self.send_json({"type": "error", "reason": reason})
        # A close reason is limited to 123 bytes; the error frame carries the whole text.
        await self.close(code=code, reason=reason.encode()[:123].decode("utf-8", errors="ignore"))

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    def query(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[-1] if values else None


class TaskLogConsumer(_TaskSocket):
    """``/ws/jobs/<id>/tasks/<task>/log/``: the log from an offset, followed while the task runs, then its end."""

    async def start(self) -> None:
        raw = self.query("offset")
        tail = self.query("tail")
        if raw is not None and whole_number(raw) is None:
            raise RefusedError(CLOSE_BAD_REQUEST, f"offset must be a byte offset (a whole number), not {raw!r}.")
        if tail is not None and whole_number(tail) is None:
            raise RefusedError(CLOSE_BAD_REQUEST, f"tail must be a number of lines, not {tail!r}.")
        self.backend = await database_sync_to_async(self.job.cluster.backend)()
        self.stop = threading.Event()
        if raw is not None:
            offset = int(raw)
        else:
            lines = int(tail) if tail is not None else TAIL_LINES
            try:
                offset = await asyncio.to_thread(tail_offset, self.backend, self.job.public_id, self.task.name, lines)
            except BackendError as exc:
                raise RefusedError(CLOSE_BACKEND, f"The cluster did not give the log: {exc}") from None
        await self.send_json({"type": "start", "offset": offset, "task": self.task.name, "state": self.task.state})
        self.relay = asyncio.create_task(self._relay(offset))

    async def end(self) -> None:
        await self.disconnect(CLOSE_REVOKED)

    async def disconnect(self, code: int) -> None:
        await self.stop_rechecking()
        stop = getattr(self, "stop", None)
        if stop is not None:
            stop.set()
        relay = getattr(self, "relay", None)
        if relay is not None and not relay.done():
            relay.cancel()
            try:
                await relay
            except asyncio.CancelledError:
                pass

    async def _relay(self, offset: int) -> None:
        pending = b""  # the first bytes of a character cut by a chunk, held for the next chunk
        try:
            while True:
                queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(QUEUE_CHUNKS)
                threading.Thread(
                    target=self._follow,
                    args=(asyncio.get_running_loop(), queue, offset + len(pending)),
                    name=f"log {self.job.public_id}/{self.task.name}",
                    daemon=True,
                ).start()
                carried: tuple[str, Any] | None = None
                while True:
                    kind, value = carried or await queue.get()
                    carried = None
                    if kind == "error":
                        await self.refuse(CLOSE_BACKEND, f"The cluster stopped giving the log: {value}")
                        return
                    if kind == "done":
                        break
                    # Chunks already waiting go out together: fewer frames when the log runs fast.
                    data = pending + value
                    while len(data) < BATCH_BYTES and not queue.empty():
                        carried = queue.get_nowait()
                        if carried[0] != "data":
                            break
                        data += carried[1]
                        carried = None
                    pending = await self._send_log(data, offset)
                    offset += len(data) - len(pending)
                end = await database_sync_to_async(task_end)(self.job, self.task)
                if end is not None:
                    break
                # The follow ended while the task had not (on Kubernetes before its pod exists): follow again.
                await asyncio.sleep(REFOLLOW_AFTER_S)
            if pending:
                offset += len(pending)
                await self.send_json(
                    {"type": "log", "data": pending.decode("utf-8", errors="replace"), "offset": offset}
                )
            await self.send_json(end.as_frame())
            await self.close(code=1000)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("log socket of %s/%s failed", self.job.public_id, self.task.name)
            try:
                await self.refuse(CLOSE_BACKEND, "The log stream failed on the server; reconnect to resume.")
            except Exception:
                pass  # the client is gone too

    async def _send_log(self, data: bytes, offset: int) -> bytes:
        """Send data in frames of whole characters; return the bytes of a character cut at its end."""
        whole = utf8_complete(data)
        body, held = data[:whole], data[whole:]
        start = 0
        while start < len(body):
            piece = body[start : start + FRAME_BYTES]
            cut = utf8_complete(piece) if start + len(piece) < len(body) else len(piece)
            cut = cut or len(piece)
            start += cut
            text = piece[:cut].decode("utf-8", errors="replace")
            await self.send_json({"type": "log", "data": text, "offset": offset + start})
        return held

    def _follow(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, offset: int) -> None:
        """The blocking follow, in a thread of its own: the backend may wait minutes for the next line."""
        try:
            for chunk in self.backend.follow_log(self.job.public_id, self.task.name, offset):
                if self.stop.is_set():
                    return
                if chunk:
                    hand_over(loop, self.stop, lambda chunk=chunk: queue.put(("data", chunk)))
            hand_over(loop, self.stop, lambda: queue.put(("done", None)))
        except StoppedError:
            return
        except Exception as exc:  # reported to the client; the socket then closes
            log.warning("following the log of %s/%s failed: %s", self.job.public_id, self.task.name, exc)
            try:
                hand_over(loop, self.stop, lambda reason=str(exc): queue.put(("error", reason)))
            except StoppedError:
                pass


class _SessionSocket(_TaskSocket):
    """A socket joined to a backend session in a task (a shell's terminal, an SSH connection): a thread pumps its
    output to the socket, binary frames go to its input; every session is on the audit record while it lives."""

    action = Action.CHANGE
    kind = "shell"

    async def open_session(self, backend: Any) -> Any:
        raise NotImplementedError

    async def start(self) -> None:
        if await database_sync_to_async(_has_ended)(self.job, self.task):
            raise RefusedError(
                CLOSE_NOT_RUNNING,
                f"Task {self.task.name} has ended ({self.task.state}); a {self.what} opens only in a running task.",
            )
        backend = await database_sync_to_async(self.job.cluster.backend)()
        try:
            self.session = await self.open_session(backend)
        except BackendError as exc:
            raise RefusedError(CLOSE_NOT_RUNNING, str(exc)) from None
        except (AttributeError, NotImplementedError):
            raise RefusedError(CLOSE_BACKEND, f"Cluster {self.job.cluster.name} offers no {self.what}s.") from None
        self.lock = threading.Lock()  # a write never overlaps the close of the session
        self.stop = threading.Event()
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[int | None] = loop.create_future()
        user = self.scope["user"]
        try:
            self.audit = await database_sync_to_async(_audit_open)(
                user=user, job=self.job, task=self.task.name, client=_client_address(self.scope), kind=self.kind
            )
        except BaseException:
            # Nobody may hold a session that is not on the record.
            await asyncio.to_thread(self.session.close)
            self.ended.set_result(None)
            raise
        threading.Thread(
            target=self._pump, args=(loop,), name=f"{self.kind} {self.job.public_id}/{self.task.name}", daemon=True
        ).start()
        self.watch = asyncio.create_task(self._watch())

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """The session's output to the socket, until it ends or the socket goes; then the session is closed."""
        code: int | None = None
        try:
            while not self.stop.is_set():
                data = self.session.read(SHELL_READ_S)
                if data is None:
                    break
                if data:
                    hand_over(loop, self.stop, lambda data=data: self.send(bytes_data=data))
        except StoppedError:
            pass
        except OSError as exc:
            log.info("%s in %s/%s ended: %s", self.kind, self.job.public_id, self.task.name, exc)
        finally:
            with self.lock:
                try:
                    self.session.close()
                except OSError:
                    pass
            code = _exit_code(self.session)
            try:
                loop.call_soon_threadsafe(lambda: self.ended.done() or self.ended.set_result(code))
            except RuntimeError:
                pass

    async def _watch(self) -> None:
        code = await self.ended
        await self._record_close(code)
        if not self.stop.is_set():  # the session ended by itself: tell the client
            try:
                await self.send_json({"type": "exit", "code": code})
                await self.close(code=1000)
            except Exception:
                pass  # the client went at the same moment

    async def _record_close(self, code: int | None) -> None:
        audit = getattr(self, "audit", None)
        if audit is None or audit.closed_at is not None:
            return
        await database_sync_to_async(services.shell_session_close)(session=audit, exit_code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "session", None) is None or self.stop.is_set():
            return
        if bytes_data is not None:
            await self._write(bytes_data)
            return
        try:
            message = json.loads(text_data or "")
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            await self.send_json({"type": "error", "reason": "control frames are JSON objects with a type"})
            return
        await self.control(kind, message)

    async def control(self, kind: str, message: dict[str, Any]) -> None:
        if kind != "ping":
            await self.send_json({"type": "error", "reason": f"unknown control frame type {kind!r}"})

    async def _write(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._locked, self.session.write, data)
        except (OSError, TimeoutError) as exc:
            log.info("writing to the %s in %s/%s failed: %s", self.kind, self.job.public_id, self.task.name, exc)

    def _locked(self, method: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            return method(*args)

    async def end(self) -> None:
        # The pump sees the stop within SHELL_READ_S and closes the session: it and what it started end.
        self.stop.set()
        await self.ended

    async def disconnect(self, code: int) -> None:
        await self.stop_rechecking()
        stop = getattr(self, "stop", None)
        if stop is None:
            return  # refused before a session was opened
        stop.set()
        # The pump closes the session (it owns the descriptor it reads); wait for that, then audit.
        exit_code = await self.ended
        watch = getattr(self, "watch", None)
        if watch is not None:
            await watch
        await self._record_close(exit_code)


class TaskShellConsumer(_SessionSocket):
    """``/ws/jobs/<id>/tasks/<task>/shell/``: a terminal in a running task; every session is audited."""

    kind = "shell"
    what = "shell"

    async def open_session(self, backend: Any) -> Any:
        return await asyncio.to_thread(backend.open_shell, self.job.public_id, self.task.name)

    async def control(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "resize":
            try:
                rows, cols = int(message["rows"]), int(message["cols"])
            except (KeyError, TypeError, ValueError):
                await self.send_json({"type": "error", "reason": "resize needs whole numbers rows and cols"})
                return
            if 0 < rows <= 1000 and 0 < cols <= 1000:
                await asyncio.to_thread(self._locked, self.session.resize, rows, cols)
        elif kind == "input":
            await self._write(str(message.get("data", "")).encode())
        else:
            await super().control(kind, message)


class TaskSSHConsumer(_SessionSocket):
    """``/ws/jobs/<id>/tasks/<task>/ssh/``: one SSH connection into a running (or held) task, its bytes in binary
    frames both ways; the task's SSH server accepts only the connecting user's own keys. Audited as kind ssh."""

    kind = "ssh"
    what = "SSH connection"

    async def open_session(self, backend: Any) -> Any:
        keys = await database_sync_to_async(ssh_key_lines)(self.scope["user"].pk)
        if not keys:
            raise RefusedError(
                CLOSE_NO_SSH_KEY,
                "You have no SSH key: add your public key on your profile's SSH keys page, "
                "or with `easyai ssh-key add ~/.ssh/id_ed25519.pub`.",
            )
        open_ssh = backend.open_ssh  # AttributeError: a backend without the debug toolbox
        return await asyncio.to_thread(open_ssh, self.job.public_id, self.task.name, keys)


def _audit_open(*, user: Any, job: Job, task: str, client: str, kind: str) -> ShellSession:
    return services.shell_session_open(user=user, job=job, task=task, client=client, kind=kind)


def _has_ended(job: Job, task: Task) -> bool:
    """Whether the task has ended for good: a task held for debugging (its job's hold still ahead) has not."""
    task.refresh_from_db(fields=["state"])
    job.refresh_from_db(fields=["state", "held_until"])
    if job.is_held:
        return False
    return task_has_ended(job, task)


def _exit_code(session: Any) -> int | None:
    """The shell's exit status when the backend knows it (the local PTY does; the exec API does not say)."""
    code = getattr(session, "exit_code", None)
    if code is not None and code < 0:
        code = 128 - code  # killed by a signal: as a shell reports it
    return code


__all__ = ["TaskEnd", "TaskLogConsumer", "TaskSSHConsumer", "TaskShellConsumer"]
