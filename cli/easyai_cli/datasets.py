"""`easyai dataset …`: make a version of a team's dataset (from your data, a job's output or a local folder), list,
show and delete them. A job mounts one with ``datasets: [name@version]`` in its spec."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from easyai_cli.client import CLIError
from easyai_cli.context import Context
from easyai_cli.models import Multipart, _folder_files, _zip_folder, named, team_of
from easyai_cli.output import dump, size, table
from easyai_cli.progress import Progress

REF = re.compile(r"(?P<name>[^@\s]+)(?:@(?P<version>[1-9][0-9]*))?")


def dataset_path(team: str, name: str, suffix: str = "") -> str:
    return f"datasets/{quote(team, safe='')}/{quote(name, safe='')}/{suffix}"


def _show_version(version: dict, args: argparse.Namespace, verb: str) -> int:
    if getattr(args, "output", None):
        dump(version, args.output)
        return 0
    print(
        f"{verb} {version['team']}/{version['ref']}: {version['file_count']} files, {size(version['size_bytes'])}, "
        f"sha256 {version['digest']}",
        file=sys.stderr,
    )
    print(f"mount it with  datasets: [{version['ref']}]  (at {version['mount_path']}, ${version['variable']})")
    return 0


def dataset_create(ctx: Context, args: argparse.Namespace) -> int:
    sources = [value for value in (args.source, args.from_job, args.upload) if value]
    if len(sources) != 1:
        raise CLIError("give one of --from data:PATH, --from-job j-…/model_dir/PATH or --upload DIR", code=2)
    team, name = named(ctx, args, args.name)
    portal = ctx.portal()
    body = {"team": team, "name": name, "description": args.description or ""}
    if args.source:
        if not args.source.startswith("data:"):
            raise CLIError(f"--from {args.source!r}: give a folder of your data as data:PATH", code=2)
        body["data_path"] = args.source
    if args.from_job:
        body["job_output"] = args.from_job
    if not args.upload:
        version = portal.json("POST", "datasets/", json=body, what=f"dataset {team}/{name}")
        return _show_version(version, args, "made")
    folder = Path(args.upload)
    if not folder.is_dir():
        raise CLIError(f"{args.upload}: no such folder", code=2)
    files = _folder_files(folder)
    if not files:
        raise CLIError(f"{args.upload}: the folder is empty, nothing to upload", code=2)
    with tempfile.TemporaryFile(prefix="easyai-dataset-", suffix=".zip") as archive:
        _zip_folder(files, archive)
        length = archive.tell()
        archive.seek(0)
        progress = Progress(f"{args.upload} ({len(files)} files)", length)
        multipart = Multipart(body, archive, length, progress, filename=f"{folder.resolve().name or 'data'}.zip")
        version = portal.json(
            "POST",
            "datasets/",
            data=multipart,
            headers={"Content-Type": multipart.content_type, "Content-Length": str(len(multipart))},
            what=f"dataset {team}/{name}",
        )
    progress.finish()
    return _show_version(version, args, "uploaded")


def dataset_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params = {} if args.all_teams else {"team": team_of(ctx, args)}
    rows = portal.get("datasets/", params=params, what="datasets")
    if args.output:
        dump(rows, args.output)
        return 0
    table(
        ["TEAM", "NAME", "VERSIONS", "LATEST", "OWNER", "DESCRIPTION"],
        [
            (d["team"], d["name"], d["version_count"], f"{d['name']}@{d['latest_version']}" if d["latest_version"]
             else "-", d["owner"], d["description"][:60])
            for d in rows
        ],
    )  # fmt: skip
    return 0


def dataset_get(ctx: Context, args: argparse.Namespace) -> int:
    team, name = named(ctx, args, args.name)
    detail = ctx.portal().get(dataset_path(team, name), what=f"dataset {team}/{name}")
    if args.output:
        dump(detail, args.output)
        return 0
    print(f"{detail['team']}/{detail['name']}  owner {detail['owner']}  {detail['description']}".rstrip())
    if detail.get("in_use_by"):
        print(f"in use by active jobs: {', '.join(detail['in_use_by'])}")
    table(
        ["VERSION", "FILES", "SIZE", "DIGEST", "MADE FROM", "BY", "CREATED"],
        [
            (v["ref"], v["file_count"], size(v["size_bytes"]), v["digest"][:12], f"{v['source']}:{v['source_ref']}",
             v["created_by"] or "-", v["created_at"][:16].replace("T", " "))
            for v in detail["versions"]
        ],
    )  # fmt: skip
    return 0


def dataset_delete(ctx: Context, args: argparse.Namespace) -> int:
    match = REF.fullmatch(args.ref)
    if match is None:
        raise CLIError(f"{args.ref!r}: give NAME@VERSION (or NAME with --all)", code=2)
    team, name = named(ctx, args, match["name"])
    portal = ctx.portal()
    if match["version"]:
        portal.request("DELETE", dataset_path(team, name, f"versions/{match['version']}/"), what=args.ref)
        print(f"deleted {team}/{name}@{match['version']}", file=sys.stderr)
    elif args.all:
        portal.request("DELETE", dataset_path(team, name), what=args.ref)
        print(f"deleted {team}/{name} and every version", file=sys.stderr)
    else:
        raise CLIError(f"{args.ref!r}: name the version (NAME@VERSION), or give --all to delete every version", code=2)
    return 0


def _usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError("say what to do with datasets: easyai dataset create | list | get | delete", code=2)


def add_commands(sub: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """`easyai dataset …`, made with main's ``_command`` helper."""
    p = command(
        sub,
        "dataset",
        _usage,
        "datasets: named, versioned folders of a team's data that jobs mount read-only",
        "easyai dataset create mnist --from data:mnist\n"
        "easyai dataset list\n"
        "easyai dataset get mnist\n"
        "easyai dataset delete mnist@1",
    )
    group = p.add_subparsers(title="dataset commands", metavar="COMMAND")

    def team_output(q: argparse.ArgumentParser) -> None:
        q.add_argument("--team", help="the team the name is in (default: your current team)")
        q.add_argument("-o", "--output", choices=("json", "yaml"), help="print the result as JSON or YAML")

    q = command(
        group,
        "create",
        dataset_create,
        "copy your data, a job's output folder or a local folder into the dataset's next version",
        "easyai dataset create mnist --from data:mnist/train\n"
        "easyai dataset create features --from-job j-3k9x2m4q/model_dir/features\n"
        "easyai dataset create images --upload ./images --description 'cats and dogs'",
        description="Make the next version of a team dataset (the dataset on first use). The files are copied: "
        "what a job mounts never changes. Symbolic links are refused. A job names it as NAME@VERSION in its "
        "spec's datasets and sees it read-only at /datasets/NAME ($EASYAI_DATASET_NAME).",
    )
    q.add_argument("name", metavar="NAME", help="the dataset (or TEAM/NAME): lowercase letters, digits and '-'")
    q.add_argument("--from", dest="source", metavar="data:PATH", help="a folder of your data space")
    q.add_argument("--from-job", metavar="JOB/OUTPUT/PATH", help="a job's output folder, j-…/model_dir/PATH")
    q.add_argument("--upload", metavar="DIR", help="a local folder, zipped and uploaded")
    q.add_argument("--description", help="a line about the dataset or this version")
    team_output(q)

    q = command(group, "list", dataset_list, "your team's datasets", "easyai dataset list\neasyai dataset list -A",
                aliases=["ls"])  # fmt: skip
    scope = q.add_mutually_exclusive_group()
    scope.add_argument("--team", help="this team's (default: your current team)")
    scope.add_argument("-A", "--all-teams", action="store_true", help="of every team you can see")
    q.add_argument("-o", "--output", choices=("json", "yaml"), help="print the result as JSON or YAML")

    q = command(group, "get", dataset_get, "show a dataset and its versions", "easyai dataset get mnist")
    q.add_argument("name", metavar="NAME", help="the dataset (or TEAM/NAME)")
    team_output(q)

    q = command(
        group,
        "delete",
        dataset_delete,
        "delete a version (refused while an active job mounts it), or with --all the dataset",
        "easyai dataset delete mnist@1\neasyai dataset delete mnist --all",
    )
    q.add_argument("ref", metavar="NAME@VERSION", help="the version to delete (or NAME with --all)")
    q.add_argument("--all", action="store_true", help="delete the dataset with every version")
    q.add_argument("--team", help="the team the name is in (default: your current team)")
