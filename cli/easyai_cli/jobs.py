"""submit, list, get, stop, delete, rerun, release."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from easyai_cli import specs
from easyai_cli.client import CLIError, Portal
from easyai_cli.context import Context
from easyai_cli.output import age, cell_text, cpu, dump, local_time, memory, table
from easyai_cli.output import duration as format_duration

JOB_ID = re.compile(r"j-[a-z0-9]{8}")
DEFAULT_LIST_LIMIT = 100


def job_path(job_id: str, suffix: str = "") -> str:
    return f"jobs/{quote(job_id, safe='')}/{suffix}"


def resolve_job(ctx: Context, portal: Portal, ref: str) -> str:
    """A job id as given; a name means the newest job of that name in the current team (as arena names jobs)."""
    if JOB_ID.fullmatch(ref):
        return ref
    params = {"q": ref, "ordering": "-created_at"}
    team = ctx.team()
    if team:
        params["team"] = team
    for job in portal.pages("jobs/", params=params):
        if job["name"] == ref:
            return job["id"]
    where = f" in team {team}" if team else ""
    raise CLIError(f"no job with id or name {ref!r}{where} (a job id looks like j-3k9x2m4q)")


# --- submit --------------------------------------------------------------------------------


def submit_file(ctx: Context, args: argparse.Namespace) -> int:
    if getattr(args, "template", None):
        return submit_template(ctx, args)
    if args.file == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        path = Path(args.file)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CLIError(f"{args.file}: no such file", code=2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"{args.file}: cannot read it ({getattr(exc, 'strerror', None) or exc})", code=2) from None
        name = args.file
    if not text.strip():
        raise CLIError(f"{name} is empty", code=2)
    portal = ctx.portal()
    team = args.team or ctx.config.effective_team()
    json_file = name.lower().endswith(".json")
    if team:
        text = specs.with_team_json(text, team) if json_file else specs.with_team(text, team)
    content_type = "application/json" if json_file else "application/yaml"
    return _submit(portal, args, data=text.encode("utf-8"), headers={"Content-Type": content_type + "; charset=utf-8"})


def submit_template(ctx: Context, args: argparse.Namespace) -> int:
    """``--template NAME --set field=value``: the team's template of that name, else the platform's, filled in."""
    values: dict[str, str] = {}
    for item in args.set or []:
        field, equals, value = item.partition("=")
        if not equals or not field.strip():
            raise CLIError(f"--set {item}: give FIELD=VALUE", code=2)
        values[field.strip()] = value
    portal = ctx.portal()
    team = args.team or ctx.config.effective_team()
    params = {"name": args.template, **({"team": team} if team else {})}
    found = portal.get("templates/", params=params).get("results", [])
    # The team's own template of that name before the platform's.
    found.sort(key=lambda t: (t.get("team") is None, t.get("team") != team))
    if not found:
        raise CLIError(f"no template {args.template!r} that you can see (the portal's Job templates page lists them)")
    body: dict[str, Any] = {"values": values, "dry_run": bool(args.dry_run), **({"team": team} if team else {})}
    result = portal.json("POST", f"templates/{found[0]['id']}/submit/", json=body)
    return _print_submitted(args, result, dry_run=bool(args.dry_run))


def submit_framework(ctx: Context, args: argparse.Namespace) -> int:
    try:
        env = specs.parse_env(args.env)
    except ValueError as exc:
        raise CLIError(str(exc), code=2) from None
    command = " ".join(args.command)
    spec = specs.build(
        args.framework,
        name=args.name,
        command=command,
        workers=args.workers,
        image=args.image or "",
        cpu=args.cpu or "",
        memory=args.memory or "",
        gpus=args.gpus,
        ps=getattr(args, "ps", 0) or 0,
        chief=getattr(args, "chief", False),
        team=args.team or ctx.config.effective_team(),
        experiment=args.experiment or "",
        cluster=args.cluster or "",
        priority=args.priority or "",
        env=env,
        working_dir=args.working_dir or "",
        timeout=args.timeout or "",
        max_retries=args.max_retries,
    )
    portal = ctx.portal()
    return _submit(portal, args, json=spec)


def _submit(portal: Portal, args: argparse.Namespace, **body: Any) -> int:
    path = "jobs/?dry_run=true" if args.dry_run else "jobs/"
    result = portal.json("POST", path, **body)
    return _print_submitted(args, result, dry_run=args.dry_run)


def _print_submitted(args: argparse.Namespace, result: dict, *, dry_run: bool) -> int:
    if args.output:
        dump(result, args.output)
        return 0
    if dry_run:
        spec = result["spec"]
        tasks = [task["name"] for task in result.get("description", {}).get("tasks", [])]
        print(
            f"The spec is valid. {spec['name']} would run {len(tasks)} task(s) in team {spec.get('team')}"
            f" on cluster {spec.get('cluster') or 'default'}: {', '.join(tasks)}"
        )
        print("Normalized spec (-o yaml shows what would be sent to the cluster):")
        dump(spec, "yaml")
        return 0
    if args.quiet:
        print(result["id"])
        return 0
    tasks = ", ".join(task["name"] for task in result.get("tasks", []))
    print(f"job {result['id']} ({result['name']}) submitted to team {result['team']} on {result['cluster']}: {tasks}")
    print(f"  follow it: easyai get {result['id']}   easyai logs {result['id']} -f")
    return 0


# --- list and get --------------------------------------------------------------------------------


def list_jobs(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params: dict[str, str] = {}
    if not args.all_teams:
        team = ctx.team()
        if team:
            params["team"] = team
    for key in ("state", "experiment", "owner", "framework", "cluster"):
        value = getattr(args, key)
        if value:
            params[key] = value
    if args.name:
        params["q"] = args.name
    if args.ordering:
        params["ordering"] = args.ordering
    first = portal.get("jobs/", params=params)
    total = first.get("count", 0)
    jobs = list(portal.pages("jobs/", params, limit=args.limit, first=first))
    if args.output in ("json", "yaml"):
        dump(jobs, args.output)
        return 0
    if not jobs:
        where = "in any team you can see" if args.all_teams else f"in team {params['team']}" if "team" in params else ""
        print(f"No jobs {where}.".replace("  ", " ").replace(" .", "."), file=sys.stderr)
        return 0
    wide = args.output == "wide"
    headers = ["ID", "NAME", "STATE", "FRAMEWORK"]
    if args.all_teams or wide:
        headers.append("TEAM")
    headers += ["OWNER", "AGE", "DURATION"]
    if wide:
        headers += ["EXPERIMENT", "CLUSTER", "PRIORITY", "CPU", "MEMORY", "GPU", "REASON"]
    rows = []
    for job in jobs:
        row = [job["id"], job["name"], job["state"], job["framework"]]
        if args.all_teams or wide:
            row.append(job["team"])
        duration = job.get("duration")
        row += [job["owner"], age(job["created_at"]), format_duration(duration) if duration is not None else "-"]
        if wide:
            row += [
                job.get("experiment"),
                job.get("cluster"),
                job.get("priority"),
                cpu(job.get("cpu_milli")),
                memory(job.get("memory_bytes")),
                job.get("gpu"),
                job.get("reason"),
            ]
        rows.append(row)
    table(headers, rows)
    if total > len(jobs):
        print(f"(showing the newest {len(jobs)} of {total}; use --limit 0 for all)", file=sys.stderr)
    return 0


def get_job(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    job = portal.get(job_path(job_id), what=f"job {job_id}")
    if args.output:
        dump(job, args.output)
        return 0
    state = job.get("state_label") or job["state"]
    state += f" ({job['reason']})" if job.get("reason") else ""
    fields = [
        ("ID", job["id"]),
        ("Name", job["name"]),
        ("Team", job["team"]),
        ("Experiment", job.get("experiment")),
        ("Owner", job["owner"]),
        ("Framework", job["framework"]),
        ("Cluster", job.get("cluster")),
        ("Priority", job.get("priority")),
        ("State", state),
        ("Message", job.get("message")),
        (
            "Resources",
            f"cpu {cpu(job.get('cpu_milli'))}, memory {memory(job.get('memory_bytes'))}, gpu {job.get('gpu')}",
        ),
        ("Created", local_time(job.get("created_at"))),
        ("Started", local_time(job.get("started_at"))),
        ("Finished", local_time(job.get("finished_at"))),
        ("Duration", format_duration(job["duration"]) if job.get("duration") is not None else None),
        ("Attempt", job.get("attempt")),
        ("Rerun of", job.get("rerun_of")),
        ("Pre-job", job.get("pre_job")),
        ("Held", _hold_text(job)),
    ]
    width = max(len(label) for label, _ in fields) + 2
    for label, value in fields:
        if value in (None, "") and label in ("Experiment", "Message", "Rerun of", "Pre-job", "Held"):
            continue
        print(f"{label + ':':<{width}}{cell_text(value) if label != 'Message' else value}")
    print("\nTasks:")
    table(
        ["NAME", "STATE", "NODE", "ADDRESS", "EXIT", "STARTED", "FINISHED", "REASON"],
        [
            (
                t["name"],
                t["state"],
                t.get("node"),
                t.get("address"),
                t.get("exit_code"),
                local_time(t.get("started_at")),
                local_time(t.get("finished_at")),
                " ".join(filter(None, (t.get("reason"), t.get("message")))),
            )
            for t in job.get("tasks", [])
        ],
    )
    if job.get("services"):
        print("\nServices:")
        table(
            ["TASK", "NAME", "PORT", "READY", "URL"],
            [
                (s["task"], s["name"], s["port"], "yes" if s.get("ready") else "no", s.get("url"))
                for s in job["services"]
            ],
        )
    print("\nEvents:")
    table(
        ["TIME", "FROM", "TO", "REASON", "BY", "MESSAGE"],
        [
            (
                local_time(e["created_at"]),
                e["from_state"],
                e["to_state"],
                e.get("reason"),
                e.get("actor"),
                e.get("message"),
            )
            for e in job.get("events", [])
        ],
    )
    return 0


# --- actions -----------------------------------------------------------------------------------


def stop_job(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    job = portal.post(job_path(job_id, "stop/"), what=f"job {job_id}")
    print(f"job {job_id} stopped (state: {job['state']})")
    return 0


def delete_job(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    portal.json("DELETE", job_path(job_id), what=f"job {job_id}")
    print(f"job {job_id} deleted")
    return 0


def _hold_text(job: dict) -> str | None:
    if not job.get("held_until"):
        return None
    return f"{job.get('held_mode')} until {local_time(job['held_until'])} (release it: easyai release {job['id']})"


def release_job(ctx: Context, args: argparse.Namespace) -> int:
    """End the hold of a job's failed task now (its spec's debug.keep_failed or debug.pause_on_failure)."""
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    job = portal.post(job_path(job_id, "release/"), what=f"job {job_id}")
    print(f"job {job_id}: the hold was released (state: {job.get('state_label') or job['state']})")
    return 0


def rerun_job(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, args.job)
    job = portal.post(job_path(job_id, "rerun/"), what=f"job {job_id}")
    if args.output:
        dump(job, args.output)
    elif args.quiet:
        print(job["id"])
    else:
        print(f"job {job['id']} ({job['name']}) submitted: a rerun of {job_id}")
    return 0
