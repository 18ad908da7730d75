"""The usage report: what jobs used and cost, for one team or several, over a range of days, grouped by user, job,
day or month. Read by the Usage page, the API and its CSV, from ``JobUsage`` alone (no join with the jobs table
for the figures): every figure is a SQL aggregate over the rows of the range, on the (team, day) and (day) indexes;
Python touches the groups only (a day or month, a user, a job of the top N), never each job.

Who sees what is the permission module's: a team's members see the team's usage, platform admins every team's
(``teams.permissions``); a team the user may not see is a 404.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Quota
from jobs.models import Job
from jobs.quota import team_usage
from monitoring.models import JobUsage
from teams import permissions
from teams.models import Team

GROUPS = ("user", "job", "day", "month")
DEFAULT_DAYS = 30  # the range when none is asked: the last 30 days (12 months when grouped by month)
MAX_DAYS = 3700  # about ten years: a range is at most this long
JOB_ROWS = 1000  # rows of a job grouping in a JSON answer (the most costly first); the CSV has them all
TOP_JOBS = 10

SUMS = (
    "core_hours_requested", "core_hours_used", "gib_hours_requested", "gib_hours_used", "gpu_hours_requested",
    "gpu_hours_used",
)  # fmt: skip
AGGREGATES = {
    "jobs": Count("pk"),
    "running_seconds": Sum("running_seconds"),
    **{name: Sum(name) for name in SUMS},
    "cost": Sum("cost"),
}
# What each row says, in this order (the CSV's columns after the group's own).
FIGURES = (
    "jobs", "running_hours", *SUMS, "cpu_efficiency", "memory_efficiency", "gpu_efficiency", "cost",
)  # fmt: skip
GROUP_COLUMNS = {
    "day": ("day",),
    "month": ("month",),
    "user": ("user",),
    "job": ("job", "name", "team", "owner", "day"),
}


class QueryError(ValueError):
    """A query parameter that cannot be used; ``param`` names it."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class UsageQuery:
    team: Team | None  # the one team asked for, or None for every team in scope
    team_ids: list[int] | None  # the teams in scope; None: every team (a platform admin asking for all)
    start: date
    end: date
    group_by: str

    @property
    def team_label(self) -> str:
        return self.team.slug if self.team else "all"

    def rows(self) -> QuerySet[JobUsage]:
        """The accounting rows in scope, over the range."""
        queryset = JobUsage.objects.filter(day__gte=self.start, day__lte=self.end)
        if self.team is not None:
            return queryset.filter(team_id=self.team.pk)
        if self.team_ids is not None:
            return queryset.filter(team_id__in=self.team_ids)
        return queryset


def _date(params: Mapping[str, str], name: str) -> date | None:
    text = (params.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QueryError(name, _("%(value)r is not a date (YYYY-MM-DD).") % {"value": text[:40]}) from None


def parse_query(params: Mapping[str, str], user, *, default_team: Team | None) -> UsageQuery:
    """The query the parameters ask for: team (a slug, or ``all``), from, to, group_by.

    Raises QueryError naming a bad parameter, Http404 for a team the user may not see.
    """
    group_by = (params.get("group_by") or "day").strip()
    if group_by not in GROUPS:
        raise QueryError(
            "group_by",
            _("%(value)r is not one of: %(choices)s.") % {"value": group_by[:40], "choices": ", ".join(GROUPS)},
        )
    end = _date(params, "to") or timezone.localdate()
    start = _date(params, "from")
    if start is None:
        if group_by == "month":
            # The first day of the twelfth month back, this one included (no earlier than the calendar's first).
            months = max(end.year * 12 + end.month - 1 - 11, 12)
            start = date(months // 12, months % 12 + 1, 1)
        else:
            start = date.fromordinal(max(end.toordinal() - (DEFAULT_DAYS - 1), 1))
    if start > end:
        raise QueryError(
            "from", _("%(start)s is after %(end)s (to).") % {"start": start.isoformat(), "end": end.isoformat()}
        )
    if (end - start).days >= MAX_DAYS:
        raise QueryError("from", _("The range is longer than %(days)s days.") % {"days": MAX_DAYS})

    slug = (params.get("team") or "").strip()
    if slug == "all" or (not slug and default_team is None and permissions.is_platform_admin(user)):
        team_ids = (
            None
            if permissions.is_platform_admin(user)
            else sorted(permissions.visible_teams(user).values_list("pk", flat=True))
        )
        return UsageQuery(None, team_ids, start, end, group_by)
    if slug:
        team = permissions.get_team_or_404(user, slug)
    elif default_team is not None and permissions.can_view_team(user, default_team):
        team = default_team
    else:
        return UsageQuery(None, [], start, end, group_by)  # in no team: nothing to see
    return UsageQuery(team, [team.pk], start, end, group_by)


# --- figures -----------------------------------------------------------------------------------------------


def _ratio(used: float | None, requested: float | None) -> float | None:
    return round(used / requested, 4) if requested and used is not None else None


def figures(sums: Mapping) -> dict:
    """One row's figures from its sums: hours rounded to the thousandth, efficiency (used ÷ requested), cost."""
    row = {
        "jobs": sums.get("jobs") or 0,
        "running_hours": round((sums.get("running_seconds") or 0) / 3600, 3),
    }
    for name in SUMS:
        row[name] = round(sums.get(name) or 0.0, 3)
    row["cpu_efficiency"] = _ratio(sums.get("core_hours_used"), sums.get("core_hours_requested"))
    row["memory_efficiency"] = _ratio(sums.get("gib_hours_used"), sums.get("gib_hours_requested"))
    row["gpu_efficiency"] = _ratio(sums.get("gpu_hours_used"), sums.get("gpu_hours_requested"))
    row["cost"] = round(float(sums.get("cost") or 0), 4)
    return row


def day_sums(query: UsageQuery) -> list[dict]:
    """The sums of each day that has jobs, oldest first, with the day's currencies: one scan of the range, from
    which the totals, the days and the months are all added up (a few hundred rows, not one per job)."""
    return list(
        query.rows()
        .values("day")
        .annotate(**AGGREGATES, first_currency=Min("currency"), last_currency=Max("currency"))
        .order_by("day")
    )


def _added(rows: list[dict]) -> dict:
    sums: dict = {}
    for row in rows:
        for name in AGGREGATES:
            sums[name] = (sums.get(name) or 0) + (row[name] or 0)
    return sums


def totals(query: UsageQuery, days: list[dict] | None = None) -> tuple[dict, str | None]:
    """The figures over everything in scope, and the currency (None when the rows mix currencies or none)."""
    days = day_sums(query) if days is None else days
    currencies = {row["first_currency"] for row in days} | {row["last_currency"] for row in days}
    return figures(_added(days)), currencies.pop() if len(currencies) == 1 else None


def _usernames(ids) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=set(ids)).values_list("pk", "username"))


def by_day(query: UsageQuery, days: list[dict] | None = None) -> list[dict]:
    """One row per day that has jobs, oldest first."""
    days = day_sums(query) if days is None else days
    return [{"day": row["day"].isoformat(), **figures(row)} for row in days]


def by_month(query: UsageQuery, days: list[dict] | None = None) -> list[dict]:
    """One row per month that has jobs: its days' sums added up."""
    days = day_sums(query) if days is None else days
    months: dict[str, list[dict]] = {}
    for row in days:
        months.setdefault(row["day"].strftime("%Y-%m"), []).append(row)
    return [{"month": month, **figures(_added(rows))} for month, rows in months.items()]


def by_user(query: UsageQuery) -> list[dict]:
    """One row per user who ran jobs, the most costly first."""
    rows = list(query.rows().values("owner_id").annotate(**AGGREGATES).order_by("-cost", "owner_id"))
    names = _usernames(row["owner_id"] for row in rows)
    return [{"user": names.get(row["owner_id"], str(row["owner_id"])), **figures(row)} for row in rows]


def by_job(query: UsageQuery, limit: int | None = JOB_ROWS) -> list[dict]:
    """One row per job, the most costly first (at most ``limit``): the figures from the accounting rows, then the
    names of just those jobs, users and teams."""
    values = ("job_id", "team_id", "owner_id", "day", "running_seconds", *SUMS, "cost")
    queryset = query.rows().order_by("-cost", "-job_id").values(*values)
    rows = list(queryset[:limit] if limit else queryset)
    jobs = {
        pk: (public_id, name)
        for pk, public_id, name in Job.objects.filter(pk__in=[r["job_id"] for r in rows]).values_list(
            "pk", "public_id", "name"
        )
    }
    teams = dict(Team.objects.filter(pk__in={r["team_id"] for r in rows}).values_list("pk", "slug"))
    users = _usernames(r["owner_id"] for r in rows)
    result = []
    for row in rows:
        public_id, name = jobs.get(row["job_id"], ("", ""))
        result.append(
            {
                "job": public_id,
                "name": name,
                "team": teams.get(row["team_id"], ""),
                "owner": users.get(row["owner_id"], ""),
                "day": row["day"].isoformat(),
                **figures({**row, "jobs": 1}),
            }
        )
    return result


def grouped(query: UsageQuery, days: list[dict] | None = None) -> list[dict]:
    """The rows of the query's grouping (``days``: its day sums, when already read)."""
    if query.group_by == "day":
        return by_day(query, days)
    if query.group_by == "month":
        return by_month(query, days)
    return by_user(query) if query.group_by == "user" else by_job(query)


def report(query: UsageQuery) -> dict:
    """The API's answer: the query, the totals and one row per group."""
    days = day_sums(query)
    total, currency = totals(query, days)
    rows = grouped(query, days)
    return {
        "team": query.team_label,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "group_by": query.group_by,
        "currency": currency,
        "totals": total,
        "rows": rows,
        "truncated": query.group_by == "job" and len(rows) >= JOB_ROWS and total["jobs"] > len(rows),
    }


def daily_series(query: UsageQuery, rows: list[dict]) -> list[dict]:
    """The day rows with the days between them filled with zeros, for a chart."""
    present = {row["day"]: row for row in rows}
    empty = figures({})
    series = []
    for ordinal in range(query.start.toordinal(), query.end.toordinal() + 1):  # to 9999-12-31 without overflowing
        key = date.fromordinal(ordinal).isoformat()
        series.append(present.get(key) or {"day": key, **empty})
    return series


# --- CSV ------------------------------------------------------------------------------------------------------


def csv_columns(group_by: str) -> tuple[str, ...]:
    return (*GROUP_COLUMNS[group_by], *FIGURES)


def csv_lines(query: UsageQuery) -> Iterator[str]:
    """The grouped rows as CSV, a header first; every job of the range when grouped by job."""
    columns = csv_columns(query.group_by)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(columns)
    if query.group_by == "job":
        rows: Iterator[dict] = _all_jobs(query)
    else:
        rows = iter(grouped(query))
    for row in rows:
        yield line([_cell(row.get(name)) for name in columns])


def _cell(value) -> object:
    # A spreadsheet runs a cell that starts with one of these as a formula: a username such as "-x" or "@x" (Django
    # allows them) must stay text.
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def _all_jobs(query: UsageQuery) -> Iterator[dict]:
    names = ("job__public_id", "job__name", "team__slug", "owner__username", "day", "running_seconds", *SUMS, "cost")
    for row in query.rows().order_by("-cost", "-job_id").values(*names).iterator(chunk_size=2000):
        yield {
            "job": row["job__public_id"],
            "name": row["job__name"],
            "team": row["team__slug"],
            "owner": row["owner__username"],
            "day": row["day"].isoformat(),
            **figures({**row, "jobs": 1}),
        }


def csv_filename(query: UsageQuery) -> str:
    return f"usage-{query.team_label}-{query.start.isoformat()}-{query.end.isoformat()}-{query.group_by}.csv"


# --- quota ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaLine:
    cluster: str
    cpu_milli: int
    cpu_used_milli: int
    memory_bytes: int
    memory_used_bytes: int
    gpu: int
    gpu_used: int


def quota_now(team: Team) -> list[QuotaLine]:
    """The team's quota on each cluster against what its jobs hold there now (``jobs.quota``)."""
    lines = []
    for quota in Quota.objects.filter(team=team).select_related("cluster").order_by("cluster__name"):
        used = team_usage(team_id=team.pk, cluster_id=quota.cluster_id)
        lines.append(
            QuotaLine(
                quota.cluster.name,
                quota.cpu_milli,
                used.cpu_milli,
                quota.memory_bytes,
                used.memory_bytes,
                quota.gpu,
                used.gpu,
            )  # fmt: skip
        )
    return lines
