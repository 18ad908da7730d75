"""usage (what a team's jobs used and cost) and top (running tasks with their live CPU, memory and GPU)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from easyai_cli.client import CLIError, RefusedError
from easyai_cli.context import Context
from easyai_cli.output import age, dump, table

GROUP_COLUMNS = {
    "day": ("DAY",),
    "month": ("MONTH",),
    "user": ("USER",),
    "job": ("JOB", "NAME", "OWNER", "STARTED"),
}
# The portal's parameter names, as this command's options.
OPTIONS = {"from": "--from", "to": "--to", "group_by": "--group-by", "team": "--team"}


def _team_param(ctx: Context, args: argparse.Namespace) -> str:
    if getattr(args, "all_teams", False):
        return "all"
    return args.team or ctx.config.effective_team()


def _get(ctx: Context, path: str, params: dict[str, str], **kwargs: Any):
    """GET with the options' names in a refusal: a bad --from is a usage mistake (exit 2)."""
    portal = ctx.portal()
    try:
        return portal.request("GET", path, params={k: v for k, v in params.items() if v}, **kwargs)
    except RefusedError as exc:
        if exc.status == 400 and isinstance(exc.body, dict):
            lines = [
                f"{OPTIONS.get(key, key)}: {' '.join(messages) if isinstance(messages, list) else messages}"
                for key, messages in exc.body.items()
            ]
            raise CLIError(*lines, code=2) from None
        if exc.status == 404 and params.get("team"):
            raise CLIError(f"team {params['team']}: not found (or you are not in it)") from None
        raise


def _hours(value: float) -> str:
    return f"{value:.1f}"


def _pair(used: float, requested: float) -> str:
    return f"{_hours(used)}/{_hours(requested)}"


def _efficiency(row: dict) -> str:
    def one(value: float | None) -> str:
        return "-" if value is None else f"{round(value * 100)}%"

    return "/".join(one(row[name]) for name in ("cpu_efficiency", "memory_efficiency", "gpu_efficiency"))


def _figures(row: dict) -> list[str]:
    return [
        _hours(row["running_hours"]),
        _pair(row["core_hours_used"], row["core_hours_requested"]),
        _pair(row["gib_hours_used"], row["gib_hours_requested"]),
        _pair(row["gpu_hours_used"], row["gpu_hours_requested"]),
        _efficiency(row),
        f"{row['cost']:.2f}",
    ]


def usage(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        "team": _team_param(ctx, args),
        "from": args.from_ or "",
        "to": args.to or "",
        "group_by": args.group_by or "",
    }
    if args.output == "csv":
        response = _get(ctx, "usage/", params, stream=True, headers={"Accept": "text/csv"})
        sys.stdout.flush()
        for chunk in response.iter_content(chunk_size=65536):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    body = ctx.portal().decode(_get(ctx, "usage/", params))
    if args.output in ("json", "yaml"):
        dump(body, args.output)
        return 0
    group = body["group_by"]
    currency = f", cost in {body['currency']}" if body.get("currency") else ""
    team = "every team you may see" if body["team"] == "all" else f"team {body['team']}"
    print(f"Usage of {team}, {body['from']} to {body['to']}, by {group}{currency}")
    headers = [*GROUP_COLUMNS[group]]
    if group != "job":
        headers.append("JOBS")
    headers += ["HOURS", "CORE-H USED/REQ", "GIB-H USED/REQ", "GPU-H USED/REQ", "EFFICIENCY CPU/MEM/GPU", "COST"]
    rows = []
    for row in body["rows"]:
        key = [row["job"], row["name"], row["owner"], row["day"]] if group == "job" else [row[group], str(row["jobs"])]
        rows.append([*key, *_figures(row)])
    total = body["totals"]
    blank = [""] * (len(GROUP_COLUMNS[group]) - 1)
    rows.append(["TOTAL", *blank, *([] if group == "job" else [str(total["jobs"])]), *_figures(total)])
    table(headers, rows)
    if body.get("truncated"):
        print(
            f"only the {len(body['rows'])} most costly of {total['jobs']} jobs are listed: -o csv has them all",
            file=sys.stderr,
        )
    return 0


# --- top -------------------------------------------------------------------------------------------------------


def _cores(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f}Gi"


def _top_rows(tasks: list[dict]) -> list[list[str]]:
    now = datetime.now(UTC)
    return [
        [
            task["job"],
            task["task"],
            task["owner"],
            task["node"] or "-",
            f"{_cores(task['cpu_cores'])}/{_cores(task['cpu_request'])}",
            f"{_gib(task['memory_bytes'])}/{_gib(task['memory_request_bytes'])}",
            str(task["gpu_request"]),
            ",".join(task["gpu_ids"]) or "-",
            "-" if task["gpu_util"] is None else f"{round(task['gpu_util'])}%",
            _gib(task["gpu_memory_bytes"]),
            age(task["started_at"], now),
        ]
        for task in tasks
    ]


TOP_HEADERS = [
    "JOB",
    "TASK",
    "OWNER",
    "NODE",
    "CPU(USED/REQ)",
    "MEMORY(USED/REQ)",
    "GPUS",
    "GPU-IDS",
    "GPU-UTIL",
    "GPU-MEM",
    "AGE",
]


def top(ctx: Context, args: argparse.Namespace) -> int:
    params = {"team": _team_param(ctx, args)}
    portal = ctx.portal()
    try:
        while True:
            body = portal.decode(_get(ctx, "usage/top/", params))
            if args.output in ("json", "yaml"):
                dump(body, args.output)
            else:
                _print_top(body, args.watch)
            sys.stdout.flush()
            if not args.watch:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        if not args.watch:
            raise
        return 0  # the way out of --watch


def _print_top(body: dict, watch: int | None) -> None:
    if watch and sys.stdout.isatty():
        sys.stdout.write("\033[H\033[2J")  # clear the screen, as watch does
    team = "every team you may see" if body["team"] == "all" else f"team {body['team']}"
    if watch:
        print(f"Every {watch}s: running tasks of {team}, {datetime.now().strftime('%H:%M:%S')}")
    if body["tasks"]:
        table(TOP_HEADERS, _top_rows(body["tasks"]))
    else:
        print(f"no running tasks in {team}")
