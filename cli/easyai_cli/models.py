"""model (the registry: list, get, register, push, pull, alias, delete) and serve (inference services).

Models and services are named within a team: the one given with --team, else the current one (`easyai team
use`, $EASYAI_TEAM, or the portal's); TEAM/NAME names another team's directly.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote

import requests

from easyai_cli.client import CLIError, Portal, UnreachableError
from easyai_cli.context import Context
from easyai_cli.jobs import job_path, resolve_job
from easyai_cli.output import age, cell_text, dump, local_time, size, table
from easyai_cli.progress import Progress

CHUNK = 256 * 1024
# NAME, NAME:3 or NAME@production (and TEAM/ before any of them).
MODEL_REF = re.compile(r"(?P<name>[^:@\s]+)(?::(?P<version>[0-9]+)|@(?P<alias>[^:@\s]+))?")


# --- names ---------------------------------------------------------------------------------------------------


def team_of(ctx: Context, args: argparse.Namespace) -> str:
    team = getattr(args, "team", None) or ctx.team()
    if not team:
        raise CLIError("no team to work in: run `easyai team use TEAM` or give --team", code=2)
    return team


def named(ctx: Context, args: argparse.Namespace, ref: str) -> tuple[str, str]:
    """(team, name) of NAME in the team commands work in, or of TEAM/NAME as given."""
    if "/" in ref:
        team, _, name = ref.partition("/")
        if not team or not name or "/" in name:
            raise CLIError(f"{ref!r}: give NAME or TEAM/NAME", code=2)
        if getattr(args, "team", None) and args.team != team:
            raise CLIError(f"{ref!r} names team {team}, but --team says {args.team}", code=2)
        return team, name
    return team_of(ctx, args), ref


def _q(text: str) -> str:
    return quote(text, safe="")


def model_path(team: str, name: str, suffix: str = "") -> str:
    return f"models/{_q(team)}/{_q(name)}/{suffix}"


def service_path(team: str, name: str, suffix: str = "") -> str:
    return f"services/{_q(team)}/{_q(name)}/{suffix}"


def list_params(ctx: Context, args: argparse.Namespace) -> dict[str, str]:
    return {} if args.all_teams else {"team": team_of(ctx, args)}


def list_items(portal: Portal, path: str, params: dict[str, str]) -> list[dict]:
    body = portal.get(path, params=params)
    return list(portal.pages(path, params, first=body)) if isinstance(body, dict) else list(body or [])


def _json_option(text: str, option: str) -> Any:
    """A JSON value given on the command line: as text, @FILE, or - for standard input."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CLIError(f"{option} {text}: cannot read it ({exc.strerror or exc})", code=2) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{option}: not valid JSON ({exc})", code=2) from None


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return cell_text(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _metrics_text(metrics: dict | None) -> str:
    return ", ".join(f"{key}={_number(value)}" for key, value in (metrics or {}).items()) or "-"


# --- model list / get ----------------------------------------------------------------------------------------


def model_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params = list_params(ctx, args)
    found = list_items(portal, "models/", params)
    if args.output:
        dump(found, args.output)
        return 0
    if not found:
        where = "in any team you can see" if args.all_teams else f"in team {params['team']}"
        print(f"No models {where}.", file=sys.stderr)
        return 0
    headers = ["NAME", "VERSIONS", "LATEST", "OWNER", "UPDATED", "DESCRIPTION"]
    if args.all_teams:
        headers.insert(0, "TEAM")
    rows = []
    for model in found:
        row = [
            model["name"],
            model.get("versions"),
            model.get("latest_version"),
            model.get("owner"),
            age(model.get("updated_at")),
            (model.get("description") or "")[:60],
        ]
        rows.append([model["team"], *row] if args.all_teams else row)
    table(headers, rows)
    return 0


def model_get(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    if args.version:
        what = f"{team}/{name}:{args.version}"
        version = portal.get(model_path(team, name, f"versions/{args.version}/"), what=what)
        if args.output:
            dump(version, args.output)
        else:
            _print_version(version)
        return 0
    model = portal.get(model_path(team, name), what=f"model {team}/{name}")
    if args.output:
        dump(model, args.output)
        return 0
    fields = [
        ("Model", f"{model['team']}/{model['name']}"),
        ("Owner", model.get("owner")),
        ("Description", model.get("description")),
        ("Tags", ", ".join(f"{k}={v}" for k, v in (model.get("tags") or {}).items())),
        ("Created", local_time(model.get("created_at"))),
        ("Updated", local_time(model.get("updated_at"))),
        ("Aliases", ", ".join(f"{alias} -> {number}" for alias, number in sorted(model.get("aliases", {}).items()))),
    ]
    print_fields(fields, optional=("Description", "Tags", "Aliases"))
    versions = sorted(model.get("version_list", []), key=lambda v: v["version"], reverse=True)
    print("\nVersions:")
    if versions:
        metric_names: list[str] = []
        for version in versions:
            metric_names += [key for key in version.get("metrics") or {} if key not in metric_names]
        table(
            ["VERSION", "FORMAT", "ALIASES", *(key.upper() for key in metric_names), "SIZE", "SOURCE", "BY", "AGE"],
            [
                (
                    v["version"],
                    v["format"],
                    ",".join(v.get("aliases") or []),
                    *(_number((v.get("metrics") or {}).get(key)) for key in metric_names),
                    size(v.get("size")),
                    _source(v),
                    v.get("registered_by"),
                    age(v.get("created_at")),
                )
                for v in versions
            ],
        )
    else:
        print("  (none yet: easyai model push DIR or easyai model register JOB)")
    history = model.get("alias_history") or []
    if history:
        print("\nAlias history:")
        table(
            ["TIME", "ALIAS", "FROM", "TO", "BY"],
            [(local_time(m.get("at")), m["alias"], m.get("from"), m.get("to"), m.get("by")) for m in history],
        )
    return 0


def _source(version: dict) -> str:
    if version.get("source_job"):
        return f"{version['source_job']}/{version.get('source_path') or 'model_dir'}"
    return "pushed"


def print_fields(fields: list[tuple[str, Any]], optional: tuple[str, ...] = ()) -> None:
    width = max(len(label) for label, _ in fields) + 2
    for label, value in fields:
        if value in (None, "") and label in optional:
            continue
        print(f"{label + ':':<{width}}{cell_text(value)}")


def _print_version(version: dict) -> None:
    files = version.get("files") or []
    print_fields(
        [
            ("Model", f"{version['team']}/{version['model']}"),
            ("Version", version["version"]),
            ("Format", version["format"]),
            ("Aliases", ", ".join(version.get("aliases") or [])),
            ("Digest", f"sha256:{version['digest']}"),
            ("Size", f"{size(version.get('size'))} in {len(files)} file{'s' if len(files) != 1 else ''}"),
            ("Metrics", _metrics_text(version.get("metrics"))),
            ("Source", _source(version)),
            ("Registered", f"{local_time(version.get('created_at'))} by {version.get('registered_by') or '-'}"),
            ("Description", version.get("description")),
        ],
        optional=("Aliases", "Description"),
    )
    lineage = version.get("lineage") or {}
    if lineage:
        print("\nLineage:")
        width = max(len(key) for key in lineage) + 2
        for key, value in lineage.items():
            # pre_jobs is a chain, newest first; a command given as a list reads best as a shell line.
            if isinstance(value, list):
                text = " <- ".join(map(str, value)) if key == "pre_jobs" else shlex.join(map(str, value))
            else:
                text = value
            print(f"  {key + ':':<{width}}{cell_text(text)}")
    print("\nFiles:")
    table(["PATH", "SIZE", "SHA256"], [(f["path"], size(f.get("size")), f.get("sha256")) for f in files])


# --- register and push ---------------------------------------------------------------------------------------


def _registered(version: dict, args: argparse.Namespace, how: str) -> int:
    if args.output:
        dump(version, args.output)
        return 0
    files = version.get("files") or []
    print(
        f"{how} {version['team']}/{version['model']} version {version['version']} ({version['format']}, "
        f"{len(files)} files, {size(version.get('size'))}; metrics: {_metrics_text(version.get('metrics'))})"
    )
    print(f"  digest sha256:{version['digest']}")
    return 0


def model_register(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    # The portal registers a job's folder into a model of the job's own team.
    team = args.team or portal.get(job_path(job_id), what=f"job {job_id}")["team"]
    body: dict[str, Any] = {"job": job_id, "path": args.path, "format": args.format}
    if args.metrics is not None:
        body["metrics"] = _json_option(args.metrics, "--metrics")
    if args.description is not None:
        body["description"] = args.description
    version = portal.post(model_path(team, args.name, "versions/"), body, what=f"model {team}/{args.name}")
    return _registered(version, args, f"registered {job_id}/{args.path} as")


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, its path in the model) for every file under the folder, sorted; links to files are followed."""
    found = []
    for current, dirnames, filenames in os.walk(folder):
        here = Path(current)
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                print(f"skipping {here / name}: a link to a folder", file=sys.stderr)
        dirnames.sort()
        for name in sorted(filenames):
            path = here / name
            if path.is_file():
                found.append((path, path.relative_to(folder).as_posix()))
    return found


def _zip_folder(files: list[tuple[Path, str]], into: IO[bytes]) -> None:
    # Level 1: weights barely compress, and a fast zip keeps a large push from waiting on the CPU.
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path, relative in files:
            archive.write(path, relative)


class Multipart:
    """A multipart/form-data body read in chunks: the archive streams from its file, never whole in memory."""

    def __init__(
        self, fields: dict[str, str], archive: IO[bytes], length: int, progress: Progress, filename: str = "model.zip"
    ):
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
            for key, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="archive"; filename="{filename}"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.parts: list[IO[bytes]] = [io.BytesIO(head), archive, io.BytesIO(tail)]
        self.length = len(head) + length + len(tail)
        self.progress = progress

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def read(self, amount: int | None = -1) -> bytes:
        wanted = CHUNK if amount is None or amount < 0 else amount
        out = bytearray()
        while self.parts and len(out) < wanted:
            chunk = self.parts[0].read(wanted - len(out))
            if chunk:
                out += chunk
            else:
                self.parts.pop(0)
        self.progress.add(len(out))
        return bytes(out)


def model_push(ctx: Context, args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.exists():
        raise CLIError(f"{args.dir}: no such folder", code=2)
    if not folder.is_dir():
        raise CLIError(f"{args.dir}: not a folder (push the folder that holds the model's files)", code=2)
    files = _folder_files(folder)
    if not files:
        raise CLIError(f"{args.dir}: the folder is empty, nothing to push", code=2)
    fields = {"format": args.format}
    if args.metrics is not None:
        fields["metrics"] = json.dumps(_json_option(args.metrics, "--metrics"))
    if args.description is not None:
        fields["description"] = args.description
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    with tempfile.TemporaryFile(prefix="easyai-push-", suffix=".zip") as archive:
        _zip_folder(files, archive)
        length = archive.tell()
        archive.seek(0)
        progress = Progress(f"{args.dir} ({len(files)} files)", length)
        body = Multipart(fields, archive, length, progress)
        version = portal.json(
            "POST",
            model_path(team, name, "versions/"),
            data=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(len(body))},
            what=f"model {team}/{name}",
        )
    progress.finish()
    return _registered(version, args, f"pushed {args.dir} as")


# --- pull ----------------------------------------------------------------------------------------------------


def _version_in(model: dict, number: int) -> dict:
    """One version of a model's detail (which lists them all, each as the version's own detail reads)."""
    found = next((v for v in model.get("version_list", []) if v["version"] == number), None)
    if found is None:
        raise CLIError(f"{model['team']}/{model['name']}:{number}: not found (or you may not see it)")
    return found


def _pull_version(model: dict, version: str | None, alias: str | None) -> int:
    team, name = model["team"], model["name"]
    if version:
        return int(version)
    if alias:
        if alias not in model.get("aliases", {}):
            known = ", ".join(sorted(model.get("aliases", {}))) or "none"
            raise CLIError(f"model {team}/{name} has no alias {alias!r} (its aliases: {known})")
        return int(model["aliases"][alias])
    if not model.get("latest_version"):
        raise CLIError(f"model {team}/{name} has no version yet")
    return int(model["latest_version"])


def model_pull(ctx: Context, args: argparse.Namespace) -> int:
    match = MODEL_REF.fullmatch(args.ref)
    if match is None or (match["version"] or "1").startswith("0"):
        raise CLIError(f"{args.ref!r}: give NAME, NAME:VERSION or NAME@ALIAS", code=2)
    portal = ctx.portal()
    team, name = named(ctx, args, match["name"])
    model = portal.get(model_path(team, name), what=f"model {team}/{name}")
    number = _pull_version(model, match["version"], match["alias"])
    what = f"{team}/{name}:{number}"
    version = _version_in(model, number)
    target = Path(args.dest or f"{name}-{number}")
    if target.exists() and not target.is_dir():
        raise CLIError(f"{target}: exists and is not a folder", code=2)
    response = portal.request("GET", model_path(team, name, f"versions/{number}/download/"), stream=True, what=what)
    with tempfile.TemporaryFile(prefix="easyai-pull-", suffix=".zip") as archive:
        progress = Progress(f"{what}", None)
        try:
            for chunk in response.iter_content(CHUNK):
                archive.write(chunk)
                progress.add(len(chunk))
        except requests.RequestException as exc:
            raise UnreachableError(portal.url, f"the download broke off: {exc}") from None
        finally:
            response.close()
        progress.finish()
        archive.seek(0)
        unpack(archive, target, version.get("files") or [])
    files = version.get("files") or []
    print(
        f"pulled {what} ({version['format']}, {len(files)} files, {size(version.get('size'))}) into {target}; "
        f"digest sha256:{version['digest']} checked",
        file=sys.stderr,
    )
    return 0


def _member_path(name: str) -> PurePosixPath:
    """A zip member's name, refused if it could land outside the target folder."""
    relative = PurePosixPath(name.rstrip("/"))
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or re.match(r"[A-Za-z]:", name)
        or relative.is_absolute()
        or any(part in ("", ".", "..") for part in relative.parts)
    ):
        raise CLIError(f"the archive holds an unsafe path {name!r}; nothing was written")
    return relative


def unpack(archive: IO[bytes], target: Path, expected: list[dict]) -> None:
    """Unpack a version's zip into ``target``: every name checked before a byte is written, every file checked
    against the version's size and sha256 in a folder beside the files, then moved into place."""
    wanted = {entry["path"]: entry for entry in expected}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise CLIError("the portal sent something that is not a zip archive; nothing was written") from None
    with zf:
        members = []
        for member in zf.infolist():
            relative = _member_path(member.filename)
            if member.is_dir():
                continue
            if stat.S_ISLNK(member.external_attr >> 16):
                raise CLIError(f"the archive holds a link {member.filename!r}; nothing was written")
            if relative.as_posix() not in wanted:
                raise CLIError(f"the archive holds {member.filename!r}, not a file of the version; nothing written")
            members.append((member, relative))
        missing = sorted(set(wanted) - {relative.as_posix() for _, relative in members})
        if missing:
            raise CLIError(f"the archive lacks {', '.join(missing)}; nothing was written")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot create the folder {target}: {exc.strerror or exc}") from None
        staging = Path(tempfile.mkdtemp(prefix=".easyai-pull-", dir=target))
        try:
            for member, relative in members:
                _extract(zf, member, staging.joinpath(*relative.parts), wanted[relative.as_posix()])
            for _member, relative in members:
                final = target.joinpath(*relative.parts)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging.joinpath(*relative.parts), final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    limit = int(entry.get("size") or 0)
    with zf.open(member) as source, open(path, "wb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise CLIError(f"{entry['path']}: larger in the archive than the version says; nothing was written")
            digest.update(chunk)
            sink.write(chunk)
    if written != limit or digest.hexdigest() != entry.get("sha256"):
        raise CLIError(f"{entry['path']}: its sha256 or size differs from the version's; nothing was written")
    os.chmod(path, 0o644)


# --- alias and delete ----------------------------------------------------------------------------------------


def model_alias(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    path = model_path(team, name, f"aliases/{_q(args.alias)}/")
    if args.delete:
        if args.version is not None:
            raise CLIError("give VERSION or --delete, not both", code=2)
        portal.json("DELETE", path, what=f"alias {args.alias} of {team}/{name}")
        print(f"alias {args.alias} of {team}/{name} deleted")
        return 0
    if args.version is None:
        raise CLIError("give the VERSION the alias points at (or --delete)", code=2)
    model = portal.json("PUT", path, json={"version": args.version}, what=f"model {team}/{name}")
    print(f"{team}/{name}@{args.alias} -> version {model['aliases'].get(args.alias, args.version)}")
    return 0


def model_delete(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    if args.version:
        portal.json("DELETE", model_path(team, name, f"versions/{args.version}/"), what=f"{team}/{name}:{args.version}")
        print(f"version {args.version} of {team}/{name} deleted")
    else:
        portal.json("DELETE", model_path(team, name), what=f"model {team}/{name}")
        print(f"model {team}/{name} deleted, with every version")
    return 0


# --- serve ---------------------------------------------------------------------------------------------------


def _serving_text(service: dict) -> str:
    version = service.get("version")
    if service.get("alias"):
        return f"@{service['alias']} (version {version if version is not None else 'none'})"
    return f"version {version}" if version is not None else "-"


def _traffic_text(service: dict) -> str:
    split = service.get("traffic") or []
    if not split:
        return "none (no revision ready)"
    return ", ".join(f"revision {t['revision']} (version {t['version']}) {t['percent']}%" for t in split)


def _latency(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else "-"


def serve_create(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    body: dict[str, Any] = {
        "team": team,
        "name": name,
        "model": args.model,
        "cpu": args.cpu,
        "memory": args.memory,
        "gpu": args.gpu,
        "min_replicas": args.min_replicas,
        "max_replicas": args.max_replicas,
        "public": args.public,
    }
    if args.version is not None:
        body["version"] = args.version
    if args.alias:
        body["alias"] = args.alias
    if args.cluster:
        body["cluster"] = args.cluster
    service = portal.post("services/", body)
    if args.output:
        dump(service, args.output)
        return 0
    starting = next((r for r in service.get("revisions", []) if r["state"] == "starting"), None)
    how = f": revision {starting['revision']} is starting" if starting else ""
    print(
        f"service {service['team']}/{service['name']} created on cluster {service['cluster']}, serving "
        f"{service['model']} {_serving_text(service)}{how}"
    )
    print(f"  URL: {service['url']}")
    print(f"  follow it: easyai serve get {service['name']}")
    return 0


def serve_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params = list_params(ctx, args)
    found = list_items(portal, "services/", params)
    if args.output:
        dump(found, args.output)
        return 0
    if not found:
        where = "in any team you can see" if args.all_teams else f"in team {params['team']}"
        print(f"No inference services {where}.", file=sys.stderr)
        return 0
    headers = ["NAME", "MODEL", "SERVING", "STATE", "TRAFFIC", "CALLS", "LATENCY", "AGE"]
    if args.all_teams:
        headers.insert(0, "TEAM")
    rows = []
    for s in found:
        split = " ".join(f"v{t['version']}:{t['percent']}%" for t in s.get("traffic") or [])
        row = [
            s["name"],
            s["model"],
            _serving_text(s),
            s["state"],
            split,
            s.get("requests"),
            _latency(s.get("mean_latency_ms")),
            age(s.get("created_at")),
        ]
        rows.append([s["team"], *row] if args.all_teams else row)
    table(headers, rows)
    return 0


def serve_get(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    service = portal.get(service_path(team, name), what=f"service {team}/{name}")
    if args.output:
        dump(service, args.output)
        return 0
    _print_service(service)
    return 0


def _print_service(service: dict) -> None:
    grpc = service.get("grpc") or {}
    canary = (
        f"version {service['canary_version']}, {service.get('canary_percent', 0)}% of the calls"
        if service.get("canary_version")
        else ""
    )
    print_fields(
        [
            ("Service", f"{service['team']}/{service['name']}"),
            ("Model", service["model"]),
            ("Serving", _serving_text(service)),
            ("Canary", canary),
            ("State", service["state"]),
            ("Message", service.get("message")),
            ("URL", service.get("url")),
            ("gRPC", f"{grpc.get('address') or '-'} ({grpc['note']})" if grpc.get("note") else grpc.get("address")),
            ("Traffic", _traffic_text(service)),
            (
                "Calls",
                f"{service.get('requests', 0)} ({service.get('errors', 0)} errors), mean latency "
                f"{_latency(service.get('mean_latency_ms'))}",
            ),
            (
                "Resources",
                f"cpu {service.get('cpu')}, memory {service.get('memory')}, gpu {service.get('gpu')}, "
                f"replicas {service.get('min_replicas')}-{service.get('max_replicas')}",
            ),
            ("Public", "yes" if service.get("public") else "no"),
            ("Cluster", service.get("cluster")),
            ("Owner", service.get("owner")),
            ("Created", local_time(service.get("created_at"))),
        ],
        optional=("Canary", "Message"),
    )
    print("\nRevisions:")
    table(
        ["REVISION", "VERSION", "STATE", "JOB", "CREATED", "READY", "ENDED", "MESSAGE"],
        [
            (
                r["revision"],
                r["version"],
                r["state"],
                r.get("job"),
                local_time(r.get("created_at")),
                local_time(r.get("ready_at")),
                local_time(r.get("ended_at")),
                r.get("message"),
            )
            for r in service.get("revisions", [])
        ],
    )


def _serve_action(ctx: Context, args: argparse.Namespace, suffix: str, body: Any, done: str) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    service = portal.post(service_path(team, name, suffix), body, what=f"service {team}/{name}")
    if args.output:
        dump(service, args.output)
        return 0
    print(f"service {team}/{name}: {done}; state {service['state']}, traffic {_traffic_text(service)}")
    return 0


def serve_canary(ctx: Context, args: argparse.Namespace) -> int:
    done = f"version {args.version} is the canary for {args.percent}% of the calls once it answers"
    return _serve_action(ctx, args, "canary/", {"version": args.version, "percent": args.percent}, done)


def serve_promote(ctx: Context, args: argparse.Namespace) -> int:
    return _serve_action(ctx, args, "promote/", None, "the canary was promoted and takes every call")


def serve_rollback(ctx: Context, args: argparse.Namespace) -> int:
    return _serve_action(ctx, args, "rollback/", None, "rolled back")


def serve_set(ctx: Context, args: argparse.Namespace) -> int:
    changes = {
        key: getattr(args, key)
        for key in ("version", "alias", "cpu", "memory", "gpu", "min_replicas", "max_replicas")
        if getattr(args, key) is not None
    }
    if not changes:
        raise CLIError("say what to change: --version N or --alias A (or --cpu, --memory, --gpu, replicas)", code=2)
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    service = portal.json("PATCH", service_path(team, name), json=changes, what=f"service {team}/{name}")
    if args.output:
        dump(service, args.output)
        return 0
    starting = next((r for r in service.get("revisions", []) if r["state"] == "starting"), None)
    how = f"; revision {starting['revision']} is starting and takes the calls once it answers" if starting else ""
    print(f"service {team}/{name} set to serve {_serving_text(service)}{how}")
    return 0


def serve_predict(ctx: Context, args: argparse.Namespace) -> int:
    body = _json_option(args.data, "--data")
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    protocol = "v2" if args.v2 else "v1"
    answer = portal.post(
        service_path(team, name, "try/"), {"protocol": protocol, "body": body}, what=f"service {team}/{name}"
    )
    if args.output:
        dump(answer, args.output)
    failed = int(answer.get("status") or 0) >= 400
    where = f"revision {answer.get('revision')}, {_latency(answer.get('latency_ms'))}"
    if not args.output:
        text = json.dumps(answer.get("body"), indent=2, ensure_ascii=False)
        if failed:
            raise CLIError(f"the model server answered {answer.get('status')} ({where}):", *text.splitlines())
        print(text)
    print(f"({where})", file=sys.stderr)
    return 1 if failed else 0


def serve_delete(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    portal.json("DELETE", service_path(team, name), what=f"service {team}/{name}")
    print(f"service {team}/{name} deleted")
    return 0
