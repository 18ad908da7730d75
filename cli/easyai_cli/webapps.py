"""app: a team's web apps (Streamlit, Gradio or a custom server): deploy a local folder, list, get, logs,
start, stop, restart, set, delete.

An app is named by its team and name, as its address is: NAME in the team commands work in (--team, else the
current one), or TEAM/NAME. Its run is a single-task job whose task is ``app-0``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from easyai_cli import specs
from easyai_cli.client import CLIError, Portal, RefusedError
from easyai_cli.context import Context
from easyai_cli.logs import print_log
from easyai_cli.models import Multipart, list_items, list_params, named, print_fields
from easyai_cli.output import age, dump, local_time, size, table
from easyai_cli.progress import Progress

APP_TASK = "app-0"
NAME_LIMIT = 40  # the portal's limit on an app's name
# Left out of a deployed folder: version control, caches and virtualenvs, never part of what the app runs.
SKIPPED_FOLDERS = frozenset({".git", "__pycache__", ".venv"})
SKIPPED_SUFFIXES = (".pyc",)
WAIT_EVERY = 2.0
# What `set` and `deploy` may change on an app that exists: argparse's dest -> the API's field.
SETTINGS = {
    "description": "description",
    "cpu": "cpu",
    "memory": "memory",
    "gpu": "gpu",
    "image": "image",
    "visibility": "visibility",
    "idle_minutes": "idle_minutes",
}


def app_path(team: str, name: str, suffix: str = "") -> str:
    return f"apps/{quote(team, safe='')}/{quote(name, safe='')}/{suffix}"


def default_name(folder: Path) -> str:
    """The folder's own name made an app name: lowercase letters, digits and '-' (DNS-1123), at most 40."""
    name = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    name = name[:NAME_LIMIT].rstrip("-")
    if not name:
        raise CLIError(f"{folder}: no app name can be made from the folder's name; give --name", code=2)
    return name


def _variables(items: list[str] | None, option: str) -> dict[str, str]:
    try:
        return specs.parse_env(items)
    except ValueError as exc:
        raise CLIError(str(exc).replace("--env", option, 1), code=2) from None


def _shared_with(items: list[str] | None) -> list[str] | None:
    if items is None:
        return None
    return [user for item in items for user in item.split(",") if user.strip()]


# --- the folder ----------------------------------------------------------------------------------------------


def app_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, its path in the app) for every file under the folder, sorted, without .git, __pycache__, .venv and
    *.pyc. A symbolic link anywhere is refused: the portal takes none, and a link's target is not the folder's."""
    found = []
    for current, dirnames, filenames in os.walk(folder):
        here = Path(current)
        kept = []
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                _refuse_link(here / name, folder)
            if name not in SKIPPED_FOLDERS:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink():
                _refuse_link(path, folder)
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            if not path.is_file():
                print(f"skipping {path}: not a regular file", file=sys.stderr)
                continue
            found.append((path, path.relative_to(folder).as_posix()))
    return found


def _refuse_link(path: Path, folder: Path) -> None:
    raise CLIError(
        f"{path}: a symbolic link; an app's folder may hold none (the portal refuses them). Copy what it points at "
        f"into {folder}, or move the link out; nothing was deployed",
        code=2,
    )


def _zipped(files: list[tuple[Path, str]], into: Any) -> None:
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path, relative in files:
            archive.write(path, relative)


def _upload(portal: Portal, path: str, fields: dict[str, str], files: list[tuple[Path, str]], label: str, what: str):
    """POST the folder's zip, with the fields, as one multipart body streamed from a temporary file."""
    with tempfile.TemporaryFile(prefix="easyai-app-", suffix=".zip") as archive:
        _zipped(files, archive)
        length = archive.tell()
        archive.seek(0)
        progress = Progress(f"{label} ({len(files)} files)", length)
        body = Multipart(fields, archive, length, progress, filename="app.zip")
        answer = portal.json(
            "POST",
            path,
            data=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(len(body))},
            what=what,
        )
    progress.finish()
    return answer


# --- deploy --------------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags given (never their defaults), as the API names them; env and secrets as mappings."""
    found = {field: getattr(args, dest) for dest, field in SETTINGS.items() if getattr(args, dest, None) is not None}
    if args.env:
        found["env"] = _variables(args.env, "--env")
    if args.secret:
        found["secrets"] = _variables(args.secret, "--secret")
    shared = _shared_with(args.share)
    if shared is not None:
        found["shared_with"] = shared
        found.setdefault("visibility", "shared")  # naming users shares the app with them
    return found


def app_deploy(ctx: Context, args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.exists():
        raise CLIError(f"{args.dir}: no such folder", code=2)
    if not folder.is_dir():
        raise CLIError(f"{args.dir}: not a folder (deploy the folder that holds the app's files)", code=2)
    settings = _settings(args)
    files = app_files(folder)
    if not files:
        raise CLIError(f"{args.dir}: the folder holds no files to deploy", code=2)
    portal = ctx.portal()
    team, name = named(ctx, args, args.name or default_name(folder))
    app = _existing(portal, team, name)
    if app is not None:
        app = _publish(portal, args, team, name, files, settings, app)
    else:
        try:
            app = _create(portal, args, team, name, files, settings)
        except RefusedError as exc:
            # The name is taken: made by someone else since we looked. Publish into it instead.
            made = _existing(portal, team, name) if exc.status == 400 and "name" in (exc.body or {}) else None
            if made is None:
                raise
            app = _publish(portal, args, team, name, files, settings, made)
    if args.wait:
        app = _wait(portal, app, args.timeout)
    if args.output:
        dump(app, args.output)
        return 0
    print(f"  URL:   {app.get('url')}")
    print(f"  state: {app.get('state')}{_message(app)}")
    if not args.wait and app.get("state") == "starting":
        print(f"  follow it: easyai app get {app['team']}/{app['name']}  (or easyai app logs {app['name']} -f)")
    return 0


def _existing(portal: Portal, team: str, name: str) -> dict | None:
    answer = portal.request("GET", app_path(team, name), ok=(404,), what=f"app {team}/{name}")
    return None if answer.status_code == 404 else portal.decode(answer)


def _create(portal: Portal, args: argparse.Namespace, team: str, name: str, files, settings: dict) -> dict:
    if not args.kind:
        raise CLIError(f"app {team}/{name} is new: say what it is with --kind streamlit, gradio or custom", code=2)
    fields = {"team": team, "name": name, "kind": args.kind}
    entry = args.entry if args.entry is not None else ("" if args.kind == "custom" else "app.py")
    if entry:
        fields["entry"] = entry
    if args.command is not None:
        fields["command"] = args.command
    if args.cluster:
        fields["cluster"] = args.cluster
    for key, value in settings.items():
        fields[key] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    app = _upload(portal, "apps/", fields, files, args.dir, f"app {team}/{name}")
    if not args.output:
        print(f"app {app['team']}/{app['name']} created ({app['kind']}, entry {app.get('entry') or '-'}): "
              f"revision {app.get('revision')} is deployed")  # fmt: skip
    return app


def _publish(
    portal: Portal, args: argparse.Namespace, team: str, name: str, files, settings: dict, existing: dict
) -> dict:
    what = f"app {team}/{name}"
    if args.kind and args.kind != existing.get("kind"):
        raise CLIError(
            f"{what} is a {existing.get('kind')} app, not {args.kind}: its kind cannot change (delete it and deploy "
            "again, or leave out --kind)",
            code=2,
        )
    if args.cluster and args.cluster != existing.get("cluster"):
        print(f"note: {what} runs on cluster {existing.get('cluster')}; --cluster only counts when it is created",
              file=sys.stderr)  # fmt: skip
    fields = {}
    if args.entry is not None:
        fields["entry"] = args.entry
    if args.command is not None:
        fields["command"] = args.command
    app = _upload(portal, app_path(team, name, "revisions/"), fields, files, args.dir, what)
    if not args.output:
        print(f"app {team}/{name}: revision {app.get('revision')} is deployed")
    if settings:
        try:
            app = _patch(portal, team, name, settings, app)
        except RefusedError as exc:
            raise RefusedError(
                exc.status,
                [f"revision {app.get('revision')} was deployed, but the portal refused the settings:", *exc.lines],
                exc.body,
            ) from None
        if not args.output:
            print(f"app {team}/{name}: settings changed ({', '.join(sorted(settings))})")
    return app


def _patch(portal: Portal, team: str, name: str, changes: dict, app: dict) -> dict:
    if "env" in changes:
        # The portal replaces the whole environment: keep the variables not named here.
        changes = {**changes, "env": {**(app.get("env") or {}), **changes["env"]}}
    return portal.json("PATCH", app_path(team, name), json=changes, what=f"app {team}/{name}")


def _message(app: dict) -> str:
    return f" ({app['message']})" if app.get("message") else ""


def _wait(portal: Portal, app: dict, timeout: float) -> dict:
    """Poll until the app answers (running) or its run failed; CLIError on failure or when time runs out."""
    team, name = app["team"], app["name"]
    deadline = time.monotonic() + timeout
    while True:
        state = app.get("state")
        if state == "running":
            return app
        if state in ("failed", "stopped", "sleeping"):
            # The message is why, then the last lines of the run's log.
            why = (app.get("message") or "").splitlines()
            raise CLIError(
                f"app {team}/{name} is {state}" + (f": {why[0]}" if why else ""),
                *(f"  {line}" for line in why[1:]),
                f"see easyai app logs {team}/{name}",
            )
        if time.monotonic() >= deadline:
            raise CLIError(f"app {team}/{name} is still {state} after {timeout:g}s; see easyai app logs {team}/{name}")
        time.sleep(WAIT_EVERY)
        app = portal.get(app_path(team, name), what=f"app {team}/{name}")


# --- list and get --------------------------------------------------------------------------------------------


def app_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params = list_params(ctx, args)
    found = list_items(portal, "apps/", params)
    if args.output:
        dump(found, args.output)
        return 0
    if not found:
        where = "in any team you can see" if args.all_teams else f"in team {params['team']}"
        print(f"No apps {where}.", file=sys.stderr)
        return 0
    table(
        ["TEAM/NAME", "KIND", "STATE", "URL", "OWNER", "LAST REQUEST"],
        [
            (
                f"{a['team']}/{a['name']}",
                a.get("kind"),
                a.get("state"),
                a.get("url"),
                a.get("owner"),
                age(a.get("last_request_at")) if a.get("last_request_at") else "never",
            )
            for a in found
        ],
    )
    return 0


def app_get(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    app = portal.get(app_path(team, name), what=f"app {team}/{name}")
    if args.output:
        dump(app, args.output)
        return 0
    print_app(app)
    return 0


def print_app(app: dict) -> None:
    shared = ", ".join(app.get("shared_with") or [])
    startup = app.get("startup_seconds")
    print_fields(
        [
            ("App", f"{app['team']}/{app['name']}"),
            ("Kind", app.get("kind")),
            ("Description", app.get("description")),
            ("URL", app.get("url")),
            ("State", app.get("state")),
            ("Message", app.get("message")),
            ("Revision", app.get("revision")),
            ("Entry", app.get("entry")),
            ("Command", _current_command(app)),
            ("Job", f"{app['job']} (task {APP_TASK})" if app.get("job") else None),
            ("Resources", f"cpu {app.get('cpu')}, memory {app.get('memory')}, gpu {app.get('gpu')}"),
            ("Image", app.get("image")),
            ("Cluster", app.get("cluster")),
            ("Env", ", ".join(f"{k}={v}" for k, v in (app.get("env") or {}).items())),
            ("Secrets", ", ".join(app.get("secrets") or [])),
            ("Visibility", f"{app.get('visibility')}{f' (with {shared})' if shared else ''}"),
            ("Idle sleep", _idle(app.get("idle_minutes"))),
            ("Last request", local_time(app.get("last_request_at")) if app.get("last_request_at") else "never"),
            ("Startup", f"{startup:.1f}s" if isinstance(startup, int | float) else None),
            ("Owner", app.get("owner")),
            ("Created", local_time(app.get("created_at"))),
        ],
        optional=("Description", "Message", "Entry", "Command", "Job", "Image", "Env", "Secrets", "Startup"),
    )
    revisions = app.get("revisions")
    if revisions:
        print("\nRevisions:")
        table(
            ["REVISION", "KIND", "ENTRY", "COMMAND", "FILES", "SIZE", "SOURCE", "BY", "CREATED"],
            [
                (
                    r["number"],
                    r.get("kind"),
                    r.get("entry"),
                    r.get("command"),
                    r.get("file_count"),
                    size(r.get("size")),
                    r.get("source"),
                    r.get("created_by"),
                    local_time(r.get("created_at")),
                )
                for r in sorted(revisions, key=lambda r: r["number"], reverse=True)
            ],
        )


def _current_command(app: dict) -> str:
    current = next((r for r in app.get("revisions") or [] if r["number"] == app.get("revision")), None)
    return (current or {}).get("command") or ""


def _idle(minutes: int | None) -> str:
    if minutes is None:
        return "-"
    return "never" if minutes == 0 else f"after {minutes} idle minutes"


# --- logs and actions ----------------------------------------------------------------------------------------


def app_logs(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    app = portal.get(app_path(team, name), what=f"app {team}/{name}")
    if not app.get("job"):
        raise CLIError(f"app {team}/{name} has not run yet: there is no log")
    return print_log(portal, app["job"], APP_TASK, follow_it=args.follow, tail_lines=args.tail)


def _action(ctx: Context, args: argparse.Namespace, verb: str, done: str) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    app = portal.post(app_path(team, name, f"{verb}/"), what=f"app {team}/{name}")
    if args.output:
        dump(app, args.output)
        return 0
    print(f"app {team}/{name} {done}; state {app.get('state')}{_message(app)}")
    return 0


def app_start(ctx: Context, args: argparse.Namespace) -> int:
    return _action(ctx, args, "start", "started")


def app_stop(ctx: Context, args: argparse.Namespace) -> int:
    return _action(ctx, args, "stop", "stopped (a visit does not wake it; easyai app start does)")


def app_restart(ctx: Context, args: argparse.Namespace) -> int:
    return _action(ctx, args, "restart", "restarted")


def app_set(ctx: Context, args: argparse.Namespace) -> int:
    changes = _settings(args)
    if args.unset_secret:
        changes["unset_secrets"] = args.unset_secret
    if not changes and not args.unset_env:
        raise CLIError(
            "say what to change: --env, --unset-env, --secret, --unset-secret, --visibility, --share, "
            "--idle-minutes, --cpu, --memory, --gpu, --image or --description",
            code=2,
        )
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    what = f"app {team}/{name}"
    if "env" in changes or args.unset_env:
        current = portal.get(app_path(team, name), what=what)
        env = {**(current.get("env") or {}), **changes.get("env", {})}
        for gone in args.unset_env or []:
            env.pop(gone, None)
        changes["env"] = env
    app = portal.json("PATCH", app_path(team, name), json=changes, what=what)
    if args.output:
        dump(app, args.output)
        return 0
    print(f"app {team}/{name} changed; state {app.get('state')}{_message(app)}")
    return 0


def app_delete(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team, name = named(ctx, args, args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError(f"delete app {team}/{name}? Give --yes to confirm (standard input is not a terminal)",
                           code=2)  # fmt: skip
        print(f"Delete app {team}/{name} with every revision? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("not deleted", file=sys.stderr)
            return 1
    portal.json("DELETE", app_path(team, name), what=f"app {team}/{name}")
    print(f"app {team}/{name} deleted, with every revision (its past runs stay in the jobs list)")
    return 0
