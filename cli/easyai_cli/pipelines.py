"""pipeline: save a pipeline spec and run it, list pipelines and their runs, show a run's steps, stop a run, retry a
step, rerun from a step, print a step's job log, and schedules (add, list, pause, resume, backfill).

A pipeline is named by its id (as `easyai pipeline list` shows it), by NAME in the team commands work in (--team,
else the current one), or by TEAM/NAME. A run by its id (r-…). A step's log is its job's log: the step's latest job
(of one foreach item with --item), read as `easyai logs` reads a job's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from easyai_cli.client import CLIError, Portal
from easyai_cli.context import Context
from easyai_cli.logs import pick_task, print_log
from easyai_cli.models import list_params, named, print_fields
from easyai_cli.output import age, dump, local_time, parse_time, table
from easyai_cli.output import duration as format_duration

PIPELINE_HELP = "the pipeline's id, or its name in your current team (or TEAM/NAME)"
RUN_HELP = "a pipeline run's id (r-…)"
SCHEDULE_HELP = "a schedule's id (see `easyai pipeline schedule list PIPELINE`)"


def _q(text: str) -> str:
    return quote(text, safe="")


def run_path(run_id: str, suffix: str = "") -> str:
    return f"pipeline-runs/{_q(run_id)}/{suffix}"


def run_url(portal: Portal, run_id: str) -> str:
    """The run's page on the portal."""
    return f"{portal.url}/pipelines/runs/{_q(run_id)}/"


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``key=value`` pairs, sent as text: the portal reads each as its param's type."""
    params: dict[str, str] = {}
    for item in items or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CLIError(f"-p {item!r}: write it as NAME=value", code=2)
        params[key] = value
    return params


def read_spec(name: str) -> str:
    if name == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        try:
            text = Path(name).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CLIError(f"{name}: no such file", code=2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"{name}: cannot read it ({getattr(exc, 'strerror', None) or exc})", code=2) from None
    if not text.strip():
        raise CLIError(f"{name} is empty", code=2)
    return text


def resolve_pipeline(ctx: Context, portal: Portal, args: argparse.Namespace, ref: str) -> dict:
    """The pipeline an id, a NAME or TEAM/NAME names (its list entry)."""
    if ref.isdigit():
        return portal.get(f"pipelines/{int(ref)}/", what=f"pipeline {ref}")
    team, name = named(ctx, args, ref)
    for pipeline in portal.get("pipelines/", params={"team": team}) or []:
        if pipeline["name"] == name:
            return pipeline
    raise CLIError(f"pipeline {team}/{name}: not found (or you may not see it)")


def _duration(run: dict) -> str:
    started, finished = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
    if started is None:
        return "-"
    if finished is None:
        return age(run.get("started_at"))
    return format_duration(finished - started)


# --- submit, list, runs ----------------------------------------------------------------------------------------


def pipeline_submit(ctx: Context, args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    text = read_spec(args.file)
    portal = ctx.portal()
    body: dict[str, Any] = {"spec": text}
    team = args.team or ctx.config.effective_team()
    if team:
        body["team"] = team
    saved = portal.post("pipelines/", body, what="pipeline")
    where = f"{saved['team']}/{saved['name']}"
    if args.no_run:
        if args.output:
            dump(saved, args.output)
        elif args.quiet:
            print(saved["id"])
        else:
            print(f"pipeline {where} (id {saved['id']}) saved as version {saved['version']}")
        return 0
    run = portal.post(
        f"pipelines/{saved['id']}/runs/", {"params": params, "version": saved["version"]}, what=f"pipeline {where}"
    )
    if args.output:
        dump(run, args.output)
        return 0
    if args.quiet:
        print(run["id"])
        return 0
    print(f"pipeline {where} (id {saved['id']}) saved as version {saved['version']}")
    print(f"run {run['id']} started: {run_url(portal, run['id'])}")
    print(f"  follow it: easyai pipeline get {run['id']}")
    return 0


def pipeline_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    params = list_params(ctx, args)
    found = portal.get("pipelines/", params=params) or []
    if args.output:
        dump(found, args.output)
        return 0
    if not found:
        where = "in any team you can see" if args.all_teams else f"in team {params['team']}"
        print(f"No pipelines {where}.", file=sys.stderr)
        return 0
    table(
        ["ID", "TEAM/NAME", "VERSION", "OWNER", "UPDATED", "DESCRIPTION"],
        [
            (
                p["id"],
                f"{p['team']}/{p['name']}",
                p.get("latest"),
                p.get("owner"),
                age(p.get("updated_at")),
                p.get("description"),
            )
            for p in found
        ],  # fmt: skip
    )
    return 0


def pipeline_runs(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    pipeline = resolve_pipeline(ctx, portal, args, args.pipeline)
    params = {"state": args.state} if args.state else {}
    runs = list(portal.pages(f"pipelines/{pipeline['id']}/runs/", params=params, limit=args.limit))
    if args.output:
        dump(runs, args.output)
        return 0
    if not runs:
        print(f"No runs of pipeline {pipeline['team']}/{pipeline['name']}.", file=sys.stderr)
        return 0
    table(
        ["RUN", "STATE", "VERSION", "OWNER", "CREATED", "DURATION", "MESSAGE"],
        [
            (
                r["id"],
                r["state"],
                r.get("version"),
                r.get("owner"),
                age(r.get("created_at")),
                _duration(r),
                r.get("message"),
            )
            for r in runs
        ],  # fmt: skip
    )
    return 0


# --- one run -----------------------------------------------------------------------------------------------------


def _job_cell(step: dict) -> str:
    jobs = step.get("jobs") or []
    if not jobs:
        return ""
    items = {row["item"] for row in jobs}
    latest = jobs[-1]
    text = latest.get("job") or ""
    if len(items) > 1:
        text = f"{len(items)} items"
    elif latest.get("attempt", 1) > 1:
        text = f"{text} (attempt {latest['attempt']})"
    return text


def print_run(portal: Portal, run: dict) -> None:
    print_fields(
        [
            ("Run", run["id"]),
            ("Pipeline", f"{run['team']}/{run['pipeline_name']} (id {run['pipeline']}) version {run['version']}"),
            ("State", run["state"] + (" (stopping)" if run.get("stop_requested") and run["state"] in ("queued", "running") else "")),
            ("Reason", run.get("reason")),
            ("Message", run.get("message")),
            ("Owner", run.get("owner")),
            ("Params", ", ".join(f"{k}={v}" for k, v in (run.get("params") or {}).items())),
            ("Engine", run.get("engine")),
            ("Schedule", run.get("schedule")),
            ("Rerun of", f"{run['rerun_of']} from {run.get('rerun_from')}" if run.get("rerun_of") else ""),
            ("Created", local_time(run.get("created_at"))),
            ("Duration", _duration(run)),
            ("URL", run_url(portal, run["id"])),
        ],
        optional=("Reason", "Message", "Params", "Schedule", "Rerun of"),
    )  # fmt: skip
    print()
    table(
        ["STEP", "STATE", "JOB", "STARTED", "DURATION", "MESSAGE"],
        [
            (
                s["name"],
                s["state"] + (f" (from {s['cached_from']})" if s.get("cached_from") else ""),
                _job_cell(s),
                local_time(s.get("started_at")) if s.get("started_at") else "",
                _duration(s),
                s.get("message"),
            )
            for s in run.get("steps", [])
        ],  # fmt: skip
    )


def pipeline_get(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    run = portal.get(run_path(args.run), what=f"run {args.run}")
    if args.output:
        dump(run, args.output)
        return 0
    print_run(portal, run)
    return 0


def pipeline_stop(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    run = portal.post(run_path(args.run, "stop/"), what=f"run {args.run}")
    print(f"run {run['id']} is stopping: its jobs are stopped, its unfinished steps end stopped")
    return 0


def pipeline_retry(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    run = portal.post(run_path(args.run, "retry/"), {"step": args.step}, what=f"run {args.run}")
    print(f"run {run['id']}: step {args.step} runs again (run {run['state']})")
    return 0


def pipeline_rerun(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    run = portal.post(run_path(args.run, "rerun-from/"), {"step": args.from_step}, what=f"run {args.run}")
    if args.quiet:
        print(run["id"])
        return 0
    print(f"run {run['id']} started from step {args.from_step} (reusing what came before it in {args.run}): "
          f"{run_url(portal, run['id'])}")  # fmt: skip
    return 0


def pipeline_logs(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    run = portal.get(run_path(args.run), what=f"run {args.run}")
    steps = {s["name"]: s for s in run.get("steps", [])}
    step = steps.get(args.step)
    if step is None:
        raise CLIError(f"run {args.run} has no step {args.step!r}; its steps: {', '.join(steps) or '(none)'}")
    jobs = [row for row in step.get("jobs") or [] if row.get("job")]
    items = sorted({row["item"] for row in jobs})
    if args.item is not None:
        jobs = [row for row in jobs if row["item"] == args.item]
        if not jobs:
            raise CLIError(
                f"step {args.step} of run {args.run} has no job for item {args.item}; its items: "
                f"{', '.join(map(str, items)) or '(none)'}"
            )
    elif len(items) > 1:
        print(f"[step {args.step} ran {len(items)} items: item {items[-1]} shown; --item N picks one]", file=sys.stderr)
        jobs = [row for row in jobs if row["item"] == items[-1]]
    if not jobs:
        cached = f" (its outputs came from run {step['cached_from']})" if step.get("cached_from") else ""
        raise CLIError(f"step {args.step} of run {args.run} has started no job{cached}: it is {step['state']}")
    job_id = max(jobs, key=lambda row: row.get("attempt", 1))["job"]
    task, _job = pick_task(portal, job_id, args.task)
    return print_log(portal, job_id, task, follow_it=args.follow, tail_lines=args.tail)


# --- schedules ---------------------------------------------------------------------------------------------------


def _schedule_line(schedule: dict) -> str:
    state = "paused" if schedule.get("paused") else f"next {local_time(schedule.get('next_time'))}"
    return f"schedule {schedule['id']} ({schedule['name']}, {schedule['cron']} {schedule['timezone']}): {state}"


def schedule_add(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "cron": args.cron}
    if args.param:
        body["params"] = parse_params(args.param)
    for key in ("timezone", "concurrency", "max_active", "catch_up_limit"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    if args.no_catch_up:
        body["catch_up"] = False
    if args.paused:
        body["paused"] = True
    portal = ctx.portal()
    pipeline = resolve_pipeline(ctx, portal, args, args.pipeline)
    schedule = portal.post(f"pipelines/{pipeline['id']}/schedules/", body, what=f"pipeline {args.pipeline}")
    if args.output:
        dump(schedule, args.output)
        return 0
    print(_schedule_line(schedule))
    return 0


def schedule_list(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    pipeline = resolve_pipeline(ctx, portal, args, args.pipeline)
    found = portal.get(f"pipelines/{pipeline['id']}/schedules/") or []
    if args.output:
        dump(found, args.output)
        return 0
    if not found:
        print(f"No schedules of pipeline {pipeline['team']}/{pipeline['name']}.", file=sys.stderr)
        return 0
    table(
        ["ID", "NAME", "CRON", "TIMEZONE", "CONCURRENCY", "PAUSED", "NEXT", "OWNER", "MESSAGE"],
        [
            (
                s["id"],
                s["name"],
                s["cron"],
                s["timezone"],
                s["concurrency"],
                "yes" if s["paused"] else "no",
                "" if s["paused"] else local_time(s.get("next_time")),
                s.get("owner"),
                s.get("message"),
            )
            for s in found
        ],  # fmt: skip
    )
    return 0


def _set_paused(ctx: Context, args: argparse.Namespace, paused: bool) -> int:
    portal = ctx.portal()
    schedule = portal.json(
        "PATCH", f"pipeline-schedules/{args.schedule}/", json={"paused": paused}, what=f"schedule {args.schedule}"
    )
    print(_schedule_line(schedule))
    return 0


def schedule_pause(ctx: Context, args: argparse.Namespace) -> int:
    return _set_paused(ctx, args, True)


def schedule_resume(ctx: Context, args: argparse.Namespace) -> int:
    return _set_paused(ctx, args, False)


def schedule_backfill(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    result = portal.post(
        f"pipeline-schedules/{args.schedule}/backfill/",
        {"start": args.start, "end": args.end},
        what=f"schedule {args.schedule}",
    )
    if args.output:
        dump(result, args.output)
        return 0
    print(f"{result['count']} runs made for schedule {args.schedule} (times that had a run were left as they were)")
    for run in result.get("runs", []):
        print(f"  {run['id']}  {local_time(run.get('scheduled_for'))}")
    return 0


# --- the commands ------------------------------------------------------------------------------------------------


def _usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with pipelines: easyai pipeline submit | list | runs | get | stop | retry | rerun | logs | "
        "schedule (see easyai pipeline --help)",
        code=2,
    )


def _schedule_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with schedules: easyai pipeline schedule add | list | pause | resume | backfill", code=2
    )


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_commands(sub: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """`easyai pipeline …`, made with main's ``_command`` helper (help, description and example alike)."""
    p = command(
        sub,
        "pipeline",
        _usage,
        "pipelines: a YAML DAG of jobs; save and run one, follow its steps, stop, retry, rerun, schedule",
        "easyai pipeline submit -f train.yaml -p lr=0.01\n"
        "easyai pipeline get r-3k9x2m4q\n"
        "easyai pipeline logs r-3k9x2m4q train -f",
    )
    group = p.add_subparsers(title="pipeline commands", metavar="COMMAND")

    q = command(
        group,
        "submit",
        pipeline_submit,
        "save a pipeline spec as its next version, then run it",
        "easyai pipeline submit -f train.yaml\n"
        "easyai pipeline submit -f train.yaml -p lr=0.01 -p epochs=3\n"
        "easyai pipeline submit -f train.yaml --no-run",
        description="Save a pipeline spec (YAML or JSON) as the next version of its pipeline (made on first save, "
        "in the spec's team, --team or your current team), then start a run of that version with the params "
        "given (-p NAME=value, read as each param's type). Prints the run's id and its page.",
    )
    q.add_argument("-f", "--file", required=True, help="the pipeline spec, YAML or JSON (- reads standard input)")
    q.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="a param of the run; repeat for more")
    q.add_argument("--no-run", action="store_true", help="save the version only")
    q.add_argument("--team", help="the team, when the spec names none (default: your current team)")
    q.add_argument("-q", "--quiet", action="store_true", help="print only the run's id (the pipeline's with --no-run)")
    q.add_argument("-o", "--output", choices=("json", "yaml"), help="print the run (or the pipeline) as JSON or YAML")

    q = command(group, "list", pipeline_list, "your team's pipelines", "easyai pipeline list\neasyai pipeline list -A",
                aliases=["ls"])  # fmt: skip
    exclusive = q.add_mutually_exclusive_group()
    exclusive.add_argument("--team", help="this team's (default: your current team)")
    exclusive.add_argument("-A", "--all-teams", action="store_true", help="of every team you can see")
    q.add_argument("-o", "--output", choices=("json", "yaml"))

    q = command(
        group,
        "runs",
        pipeline_runs,
        "a pipeline's runs, newest first",
        "easyai pipeline runs train-chain\neasyai pipeline runs vision/train-chain --state failed",
    )
    q.add_argument("pipeline", metavar="PIPELINE", help=PIPELINE_HELP)
    q.add_argument(
        "--state", help="a state, or several separated by commas (queued, running, success, failed, stopped)"
    )
    q.add_argument("--limit", type=_whole, default=50, help="show at most N runs (0: all; default 50)")
    q.add_argument("--team", help="the team the name is in (default: your current team)")
    q.add_argument("-o", "--output", choices=("json", "yaml"))

    q = command(
        group, "get", pipeline_get, "show a run with its steps' states and jobs", "easyai pipeline get r-3k9x2m4q"
    )
    q.add_argument("run", metavar="RUN", help=RUN_HELP)
    q.add_argument("-o", "--output", choices=("json", "yaml"))

    q = command(group, "stop", pipeline_stop, "stop a run (its jobs are stopped)", "easyai pipeline stop r-3k9x2m4q")
    q.add_argument("run", metavar="RUN", help=RUN_HELP)

    q = command(
        group,
        "retry",
        pipeline_retry,
        "run a failed step again in the same run",
        "easyai pipeline retry r-3k9x2m4q train",
    )
    q.add_argument("run", metavar="RUN", help=RUN_HELP)
    q.add_argument("step", metavar="STEP", help="the failed (or stopped) step")

    q = command(
        group,
        "rerun",
        pipeline_rerun,
        "a new run from a step, reusing the outputs of the steps before it",
        "easyai pipeline rerun r-3k9x2m4q --from evaluate",
    )
    q.add_argument("run", metavar="RUN", help=RUN_HELP)
    q.add_argument("--from", dest="from_step", required=True, metavar="STEP", help="the step to run again from")
    q.add_argument("-q", "--quiet", action="store_true", help="print only the new run's id")

    q = command(
        group,
        "logs",
        pipeline_logs,
        "print the log of a step's job",
        "easyai pipeline logs r-3k9x2m4q train\neasyai pipeline logs r-3k9x2m4q shard --item 2 -f",
        description="Print the log of a step's latest job (its latest attempt), as `easyai logs` prints a job's: "
        "its first task unless -t names one. A foreach step has a job per item: --item N picks one (default: the "
        "last). With -f it follows the log until the task ends.",
    )
    q.add_argument("run", metavar="RUN", help=RUN_HELP)
    q.add_argument("step", metavar="STEP", help="the step")
    q.add_argument("--item", type=_whole, metavar="N", help="a foreach step's item (0, 1, …)")
    q.add_argument("-t", "--task", help="the task, e.g. worker-1 (see `easyai get JOB`)")
    q.add_argument("-f", "--follow", action="store_true", help="keep printing as the task writes, until it ends")
    q.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines (then follow with -f)")

    s = command(
        group,
        "schedule",
        _schedule_usage,
        "a pipeline's schedules: cron times that run its latest version",
        "easyai pipeline schedule add train-chain --name nightly --cron '0 3 * * *' --timezone Asia/Shanghai\n"
        "easyai pipeline schedule list train-chain\n"
        "easyai pipeline schedule backfill 4 --start 2026-01-01T00:00Z --end 2026-01-07T00:00Z",
    )
    schedules = s.add_subparsers(title="schedule commands", metavar="COMMAND")
    q = command(
        schedules,
        "add",
        schedule_add,
        "run a pipeline's latest version at the times of a cron expression",
        "easyai pipeline schedule add train-chain --name nightly --cron '0 3 * * *' -p lr=0.01",
    )
    q.add_argument("pipeline", metavar="PIPELINE", help=PIPELINE_HELP)
    q.add_argument("--name", required=True, help="the schedule's name: lowercase letters, digits and '-'")
    q.add_argument("--cron", required=True, help="a cron expression, e.g. '0 3 * * *'")
    q.add_argument("--timezone", help="the cron's timezone, e.g. Asia/Shanghai (default UTC)")
    q.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="a param of its runs; repeat")
    q.add_argument("--concurrency", choices=("allow", "forbid", "replace"), help="while earlier runs are active")
    q.add_argument("--max-active", type=int, metavar="N", help="most active runs (with allow; default 1)")
    q.add_argument("--no-catch-up", action="store_true", help="do not make runs missed while the portal was down")
    q.add_argument("--catch-up-limit", type=_whole, metavar="N", help="most missed runs made (default 10)")
    q.add_argument("--paused", action="store_true", help="make it paused")
    q.add_argument("--team", help="the team the name is in (default: your current team)")
    q.add_argument("-o", "--output", choices=("json", "yaml"))

    q = command(schedules, "list", schedule_list, "a pipeline's schedules", "easyai pipeline schedule list train-chain",
                aliases=["ls"])  # fmt: skip
    q.add_argument("pipeline", metavar="PIPELINE", help=PIPELINE_HELP)
    q.add_argument("--team", help="the team the name is in (default: your current team)")
    q.add_argument("-o", "--output", choices=("json", "yaml"))

    for name, handler, verb in (
        ("pause", schedule_pause, "pause a schedule: it makes no runs until resumed"),
        ("resume", schedule_resume, "resume a paused schedule"),
    ):
        q = command(schedules, name, handler, verb, f"easyai pipeline schedule {name} 4")
        q.add_argument("schedule", metavar="SCHEDULE", type=_whole, help=SCHEDULE_HELP)

    q = command(
        schedules,
        "backfill",
        schedule_backfill,
        "a run for each of a schedule's times in a range (with its time as {{schedule.time}})",
        "easyai pipeline schedule backfill 4 --start 2026-01-01T00:00Z --end 2026-01-07T23:59Z",
    )
    q.add_argument("schedule", metavar="SCHEDULE", type=_whole, help=SCHEDULE_HELP)
    q.add_argument("--start", required=True, help="ISO-8601 date and time, e.g. 2026-01-01T00:00Z")
    q.add_argument("--end", required=True, help="ISO-8601 date and time (included)")
    q.add_argument("-o", "--output", choices=("json", "yaml"))
