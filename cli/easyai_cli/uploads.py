"""Resumable uploads of large files (the portal's /api/v1/uploads/): chunks at the portal's offset.

A file above the threshold is hashed, an upload is opened for it (its size and sha256), and its chunks
are sent one by one, each with ``Upload-Offset``; a broken connection is retried from the offset the portal
says it has. The upload's id is kept in the config folder (``uploads/``, one small file per local file and
target), so ``easyai upload --resume`` of the same file continues where an interrupted run stopped, even
after the CLI was killed. The portal checks the sha256 before it places the file: a file changed meanwhile
is refused, never half-placed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from easyai_cli.client import CLIError, Portal, RefusedError, UnreachableError
from easyai_cli.config import config_dir
from easyai_cli.progress import Progress

# Files above this go in chunks (``--resumable-above`` or $EASYAI_RESUMABLE_ABOVE change it).
DEFAULT_THRESHOLD = 8 * 2**20
CHUNK_SIZE = 8 * 2**20  # when the portal suggests none
READ_BLOCK = 1024 * 1024
RETRIES = 5  # attempts per chunk on a broken connection or a portal that is briefly away
STATE_FOLDER = "uploads"
pause = time.sleep  # between retries (tests wait for nothing)


def threshold(given: int | None) -> int:
    if given is not None:
        return given
    text = os.environ.get("EASYAI_RESUMABLE_ABOVE", "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    if not text.isdigit():
        raise CLIError(f"EASYAI_RESUMABLE_ABOVE={text!r} is not a number of bytes", code=2)
    return int(text)


def _state_path(portal: Portal, space: str, remote: str, local: Path) -> Path:
    key = json.dumps([portal.url, space, remote, str(local.resolve())]).encode()
    return config_dir() / STATE_FOLDER / f"{hashlib.sha256(key).hexdigest()[:32]}.json"


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("id"), str) else None


def _save_state(path: Path, state: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(temporary, path)
    except OSError as exc:
        raise CLIError(f"cannot keep the upload's state in {path}: {exc.strerror or exc}") from None


def _forget(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _sha256(local: Path, label: str) -> str:
    digest = hashlib.sha256()
    size = local.stat().st_size
    progress = Progress(f"{label} (sha256)", size)
    with local.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
            progress.add(len(block))
    progress.finish()
    return digest.hexdigest()


class _Chunk:
    """A chunk's bytes that count as requests reads them, so the bar moves within a chunk."""

    def __init__(self, data: bytes, progress: Progress):
        self.data = memoryview(data)
        self.position = 0
        self.progress = progress

    def __len__(self) -> int:
        return len(self.data)

    def read(self, amount: int = -1) -> bytes:
        end = len(self.data) if amount is None or amount < 0 else min(self.position + amount, len(self.data))
        piece = self.data[self.position : end].tobytes()
        self.position = end
        self.progress.add(len(piece))
        return piece


def send_chunk(portal: Portal, url: str, offset: int, data: bytes, progress: Progress) -> dict:
    """PATCH one chunk at ``offset``; the portal's answer (a 409 answer too: it carries the portal's offset)."""
    response = portal.request(
        "PATCH",
        url,
        data=_Chunk(data, progress),
        headers={
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(data)),
        },
        ok=(409,),
        what="the upload",
    )
    return portal.decode(response)


def _retryable(exc: CLIError) -> bool:
    return isinstance(exc, UnreachableError) or (isinstance(exc, RefusedError) and exc.status >= 500)


def _resumed(portal: Portal, state: dict[str, Any], size: int, mtime_ns: int, label: str) -> dict | None:
    """The portal's view of a kept upload, or None when it cannot go on (gone, expired, the file changed)."""
    if (state.get("size"), state.get("mtime_ns")) != (size, mtime_ns):
        print(f"{label}: the file changed since the interrupted upload; starting again", file=sys.stderr)
        _cancel(portal, state["id"])
        return None
    try:
        return portal.get(f"uploads/{state['id']}/", what="the interrupted upload")
    except RefusedError as exc:
        if exc.status != 404:
            raise
    print(f"{label}: the interrupted upload is gone from the portal (expired?); starting again", file=sys.stderr)
    return None


def _cancel(portal: Portal, upload_id: str) -> None:
    try:
        portal.request("DELETE", f"uploads/{upload_id}/", ok=(404,))
    except CLIError:
        pass  # it expires on its own


def upload_file(portal: Portal, local: Path, space: str, remote: str, label: str, *, resume: bool) -> dict:
    """Upload one file in chunks (resuming a kept upload with ``resume``); the placed file's entry."""
    st = local.stat()
    state_path = _state_path(portal, space, remote, local)
    kept = _load_state(state_path)
    upload: dict | None = None
    if kept and resume:
        upload = _resumed(portal, kept, st.st_size, st.st_mtime_ns, label)
    elif kept:
        _cancel(portal, kept["id"])  # a fresh start: the old upload's bytes are not needed
    elif resume:
        print(f"{label}: no interrupted upload of this file to resume; starting", file=sys.stderr)
    if upload is None:
        digest = _sha256(local, label)
        upload = portal.post(
            "uploads/", {"space": space, "path": remote, "size": st.st_size, "sha256": digest}, what=f"{space}:{remote}"
        )
        _save_state(
            state_path,
            {"id": upload["id"], "size": st.st_size, "mtime_ns": st.st_mtime_ns, "space": space, "path": remote},
        )
    elif upload.get("offset"):
        print(f"{label}: resuming at {upload['offset']} of {st.st_size} bytes", file=sys.stderr)
    url = f"uploads/{upload['id']}/"
    chunk_size = int(upload.get("chunk_size") or CHUNK_SIZE)
    progress = Progress(label, st.st_size)
    progress.done = offset = int(upload["offset"])
    answer = upload
    with local.open("rb") as handle:
        while answer.get("state") != "complete":
            handle.seek(offset)
            data = handle.read(chunk_size)
            answer = _send_with_retries(portal, url, offset, data, progress, label)
            if "state" not in answer:  # a 409: the portal is elsewhere (another run of this upload, a lost answer)
                answer = portal.get(url, what="the upload")
            offset = int(answer["offset"])
            progress.done = offset
    progress.finish()
    _forget(state_path)
    return answer.get("file") or {"path": remote, "size": st.st_size, "type": "file"}


def _send_with_retries(portal: Portal, url: str, offset: int, data: bytes, progress: Progress, label: str) -> dict:
    for attempt in range(RETRIES):
        try:
            return send_chunk(portal, url, offset, data, progress)
        except CLIError as exc:
            if not _retryable(exc) or attempt == RETRIES - 1:
                raise CLIError(
                    *exc.lines, f"{label}: run the same command with --resume to go on from where it stopped"
                ) from None
        pause(min(2**attempt, 10))
        # The chunk may have arrived, wholly or in part: go on from the portal's offset, whatever it is.
        answer = portal.get(url, what="the upload")
        if int(answer["offset"]) != offset or answer.get("state") == "complete":
            return answer
    raise AssertionError("unreachable")
