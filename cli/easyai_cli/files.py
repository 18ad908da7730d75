"""download (a job's outputs, or a workspace or your data) and upload (into a workspace or your data), with a
progress bar."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import quote

import requests

from easyai_cli.client import CLIError, Portal, UnreachableError
from easyai_cli.context import Context
from easyai_cli.jobs import job_path, resolve_job
from easyai_cli.output import dump, size, table
from easyai_cli.progress import Progress
from easyai_cli.uploads import threshold as resumable_threshold
from easyai_cli.uploads import upload_file as resumable_upload

CHUNK = 256 * 1024
OUTPUTS = ("model_dir", "summary_dir", "log_dir", "share_dir")
WORKSPACES = ("personal", "public", "data")


@dataclass
class RemoteFile:
    remote: str  # the path under the job's outputs, as the portal names it
    local: Path
    size: int


def _remote_path(*parts: str) -> str:
    joined = "/".join(part.strip("/") for part in parts if part and part.strip("/"))
    return quote(joined, safe="/")


def _safe_relative(path: str) -> PurePosixPath:
    """A portal-given relative path, refused if it could write outside the target folder."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or any(part in ("", ".", "..") for part in relative.parts) or "\\" in path:
        raise CLIError(f"the portal listed a file with an unsafe path {path!r}; nothing written there")
    return relative


def download(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    if getattr(args, "space", None):
        return _download_space(portal, args)
    job_id = resolve_job(ctx, portal, args.job)
    outputs_path = job_path(job_id, "outputs/")
    if not args.output_name:
        body = portal.get(outputs_path, what=f"job {job_id}")
        if args.format:
            dump(body, args.format)
        else:
            table(
                ["OUTPUT", "TASK", "EXISTS"],
                [(o["path"], o.get("task"), "yes" if o["exists"] else "no") for o in body["outputs"]],
            )
        return 0
    remote = "/".join(part.strip("/") for part in (args.output_name, args.path or "") if part.strip("/"))
    what = f"{job_id} {remote}"
    destination = Path(args.dest)
    base_name = PurePosixPath(remote).name
    if args.zip:
        target = destination / f"{job_id}-{remote.replace('/', '-')}.zip"
        response = portal.request(
            "GET", outputs_path + _remote_path(remote) + "/", params={"archive": "zip"}, stream=True, what=what
        )
        _save(response, target, Progress(target.name, _length(response)), portal)
        print(f"saved {target} ({size(target.stat().st_size)})", file=sys.stderr)
        return 0
    response = portal.request("GET", outputs_path + _remote_path(remote), stream=True, what=what)
    if "attachment" in response.headers.get("Content-Disposition", ""):
        target = destination / base_name
        _make_folder(destination)
        _save(response, target, Progress(base_name, _length(response)), portal)
        print(f"saved {target} ({size(target.stat().st_size)})", file=sys.stderr)
        return 0
    listing = portal.decode(response)
    root = destination / base_name
    files, folders = _walk(portal, outputs_path, remote, listing, root)
    _make_folder(root)
    for folder in folders:
        _make_folder(folder)
    total = sum(f.size for f in files)
    progress = Progress(f"{remote} ({len(files)} files)", total)
    for item in files:
        _make_folder(item.local.parent)
        file_response = portal.request("GET", outputs_path + _remote_path(item.remote), stream=True, what=what)
        _save(file_response, item.local, progress, portal, finish=False)
    progress.finish()
    print(f"saved {len(files)} files ({size(total)}) in {root}", file=sys.stderr)
    return 0


def _download_space(portal: Portal, args: argparse.Namespace) -> int:
    """``--from data PATH``: a file or a folder (everything in it) of a workspace or your data, saved under DIR."""
    if args.output_name or args.path:
        raise CLIError("with --from, give one PATH in that space (download --from data mnist/train)", code=2)
    space = args.space
    remote = (args.job or "").strip("/")
    base = f"files/{space}/"
    what = f"{space}:{remote or '/'}"
    destination = Path(args.dest)
    base_name = PurePosixPath(remote).name or space
    if args.zip:
        target = destination / f"{space}-{remote.replace('/', '-') or 'all'}.zip"
        response = portal.request("GET", base + _remote_path(remote), params={"archive": "zip"}, stream=True, what=what)
        _save(response, target, Progress(target.name, _length(response)), portal)
        print(f"saved {target} ({size(target.stat().st_size)})", file=sys.stderr)
        return 0
    response = portal.request("GET", base + _remote_path(remote), stream=True, what=what)
    if "attachment" in response.headers.get("Content-Disposition", ""):
        target = destination / base_name
        _make_folder(destination)
        _save(response, target, Progress(base_name, _length(response)), portal)
        print(f"saved {target} ({size(target.stat().st_size)})", file=sys.stderr)
        return 0
    root = destination / base_name
    files, folders = _walk(portal, base, remote, portal.decode(response), root)
    _make_folder(root)
    for folder in folders:
        _make_folder(folder)
    total = sum(f.size for f in files)
    progress = Progress(f"{what} ({len(files)} files)", total)
    for item in files:
        file_response = portal.request("GET", base + _remote_path(item.remote), stream=True, what=item.remote)
        _save(file_response, item.local, progress, portal, finish=False)
    progress.finish()
    print(f"saved {len(files)} files ({size(total)}) in {root}", file=sys.stderr)
    return 0


def _walk(
    portal: Portal, outputs_path: str, remote: str, listing: dict, root: Path
) -> tuple[list[RemoteFile], list[Path]]:
    """Every file under a folder, by its listings (one request per folder), before a byte is downloaded."""
    files: list[RemoteFile] = []
    folders: list[Path] = []
    pending = [listing]
    prefix = remote.strip("/") + "/" if remote.strip("/") else ""
    while pending:
        body = pending.pop()
        for entry in body.get("entries", []):
            path = entry["path"]
            if not path.startswith(prefix):
                raise CLIError(f"the portal listed {path!r} outside {remote!r}; nothing written")
            local = root.joinpath(*_safe_relative(path[len(prefix) :]).parts)
            if entry["type"] == "dir":
                folders.append(local)
                pending.append(portal.get(outputs_path + _remote_path(path) + "/", what=path))
            elif entry["type"] == "file":
                files.append(RemoteFile(path, local, int(entry.get("size") or 0)))
    return files, folders


def _length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _save(
    response: requests.Response, target: Path, progress: Progress, portal: Portal, *, finish: bool = True
) -> None:
    """Stream a body to a temporary file beside the target, then rename: an interrupted download leaves no half file."""
    try:
        _write(response, target, progress, portal)
    except OSError as exc:
        raise CLIError(f"cannot save {target}: {exc.strerror or exc}") from None
    finally:
        response.close()
    if finish:
        progress.finish()


def _write(response: requests.Response, target: Path, progress: Progress, portal: Portal) -> None:
    _make_folder(target.parent)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    progress.add(len(chunk))
            except requests.RequestException as exc:
                raise UnreachableError(portal.url, f"the download broke off: {exc}") from None
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None


class _Reader:
    """A file that counts what is read from it: requests sends it with a Content-Length, in chunks."""

    def __init__(self, handle: BinaryIO, length: int, progress: Progress):
        self.handle = handle
        self.length = length
        self.progress = progress

    def __len__(self) -> int:
        return self.length

    def read(self, amount: int = -1) -> bytes:
        chunk = self.handle.read(CHUNK if amount is None or amount < 0 else amount)
        self.progress.add(len(chunk))
        return chunk


def _local_files(source: Path) -> Iterator[tuple[Path, str]]:
    """(file, path relative to the source) for a file, or every file under a folder, sorted for a stable order."""
    if source.is_file():
        yield source, source.name
        return
    for folder, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(folder) / name
            if path.is_file():
                yield path, path.relative_to(source.parent).as_posix()


def upload(ctx: Context, args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not source.exists():
        raise CLIError(f"{args.file}: no such file or folder", code=2)
    portal = ctx.portal()
    space = getattr(args, "to", None) or ("public" if args.public else "personal")
    if args.public and space != "public":
        raise CLIError(f"--public and --to {space} name two places: give one", code=2)
    dest = (args.dest or "").strip()
    items = list(_local_files(source))
    if not items:
        raise CLIError(f"{args.file}: nothing to upload", code=2)
    uploaded: list[dict] = []
    resumable_above = resumable_threshold(getattr(args, "resumable_above", None))
    for path, relative in items:
        if source.is_file():
            # DEST names the file, or the folder it goes into when it ends with "/" (or is not given).
            remote = dest + source.name if (not dest or dest.endswith("/")) else dest
        else:
            remote = f"{dest.rstrip('/')}/{relative}" if dest else relative
        try:
            handle = path.open("rb")
            length = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
        if length > resumable_above:
            handle.close()
            entry = resumable_upload(portal, path, space, remote, relative, resume=getattr(args, "resume", False))
            uploaded.append(entry)
            print(f"uploaded {path} -> {space}:{entry.get('path', remote)} ({size(length)})", file=sys.stderr)
            continue
        progress = Progress(relative, length)
        with handle:
            entry = portal.json(
                "PUT",
                f"files/{space}/{_remote_path(remote)}",
                data=_Reader(handle, length, progress),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
                what=f"{space}:{remote}",
            )
        progress.finish()
        uploaded.append(entry)
        print(f"uploaded {path} -> {space}:{entry.get('path', remote)} ({size(length)})", file=sys.stderr)
    if args.format:
        dump(uploaded, args.format)
    return 0
