"""What the CLI prints: aligned tables for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

FORMATS_LIST = ("wide", "json", "yaml")
FORMATS_DOC = ("json", "yaml")


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None, *, dash: bool = True
) -> None:
    """kubectl-style: upper-case headers, columns padded to their widest cell, three spaces apart.

    Empty cells show as "-" (so columns stay countable) unless ``dash`` is off, for marker columns.
    """
    out = out or sys.stdout
    cells = [[cell_text(cell) if dash or cell else "" for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in [list(headers), *cells]:
        line = "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
        out.write(line.rstrip() + "\n")


def cell_text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    # One line per row whatever the portal says: a multi-line message would break the columns.
    return " ".join(str(value).split())


def dump(data: Any, fmt: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago, as kubectl shows it: 42s, 7m, 3h, 12d."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    return duration((now or datetime.now(UTC)) - moment)


def duration(delta: Any) -> str:
    seconds = int(delta.total_seconds() if hasattr(delta, "total_seconds") else delta)
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def local_time(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def size(value: int | float | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def cpu(milli: int | None) -> str:
    if milli is None:
        return "-"
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory(amount: int | None) -> str:
    if amount is None:
        return "-"
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount >= factor and amount % factor == 0:
            return f"{amount // factor}{unit}"
    return size(amount).replace(" ", "")
