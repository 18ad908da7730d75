"""The Usage page: what a team's jobs used and cost (or every team's, for platform admins), as charts and tables,
with the team's quota against what it holds now, the most costly jobs and a CSV download.

The view parses the query, asks ``monitoring.report`` and renders; the charts are drawn by
``static/easyai/usage.js`` from the figures embedded with ``json_script`` (no inline script).
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from monitoring import report
from teams import permissions

PAGE_JOB_ROWS = 100  # the table of a job grouping on the page; the CSV has every job
CHART_USERS = 20  # users in the by-user chart


def _chart_row(label: str, row: dict) -> dict:
    return {
        "label": label,
        "cost": row["cost"],
        "core_hours_used": row["core_hours_used"],
        "core_hours_requested": row["core_hours_requested"],
        "gib_hours_used": row["gib_hours_used"],
        "gpu_hours_requested": row["gpu_hours_requested"],
        "gpu_hours_used": row["gpu_hours_used"],
    }


LOW_EFFICIENCY = 0.5  # below this, an efficiency is flagged


def _efficiency(value: float | None) -> str:
    """One efficiency as HTML: a percentage, flagged when low; a dash when nothing was asked or sampled."""
    if value is None:
        return "–"
    text = f"{round(value * 100)} %"
    return f'<span class="text-warning">{text}</span>' if value < LOW_EFFICIENCY else text


def _cell(text: str, css: str = "text-end", href: str = "", *, markup: str = "") -> str:
    # The standard library's escape: Django's (lazy-aware) costs more than the rest of a row. ``markup`` is HTML
    # made here from numbers alone.
    content = markup or (f'<a href="{html.escape(href)}">{html.escape(text)}</a>' if href else html.escape(text))
    return f'<td class="{css}">{content}</td>' if css else f"<td>{content}</td>"


def table(rows: list[dict], kind: str) -> list[SafeString]:
    """Each row of a table as its HTML, made here (a few hundred groups at most): a template node per cell costs
    more than the sums themselves."""
    job_url = reverse("job-detail", args=["JOB"])
    result = []
    for row in rows:
        if kind == "job":
            cells = [
                _cell(row["job"], "text-nowrap", job_url.replace("JOB", row["job"])),
                _cell(row["name"], ""),
                _cell(row["team"], ""),
                _cell(row["owner"], ""),
                _cell(row["day"], "text-nowrap"),
            ]
        else:
            cells = [_cell(str(row[kind]), "text-nowrap"), _cell(str(row["jobs"]))]
        efficiencies = [row["cpu_efficiency"], row["memory_efficiency"], row["gpu_efficiency"]]
        cells += [
            _cell(f"{row['running_hours']:.1f}"),
            _cell(f"{row['core_hours_used']:.1f} / {row['core_hours_requested']:.1f}"),
            _cell(f"{row['gib_hours_used']:.1f} / {row['gib_hours_requested']:.1f}"),
            _cell(f"{row['gpu_hours_used']:.1f} / {row['gpu_hours_requested']:.1f}"),
            _cell("", "text-end text-nowrap", markup=" · ".join(_efficiency(value) for value in efficiencies)),
            _cell(f"{row['cost']:.2f}", "text-end usage-cost"),
        ]
        result.append(mark_safe("<tr>" + "".join(cells) + "</tr>"))  # every cell is escaped by _cell
    return result


@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    params = {key: request.GET.get(key, "") for key in ("team", "from", "to", "group_by")}
    teams = list(permissions.visible_teams(request.user).order_by("slug").values_list("slug", "name"))
    context: dict = {
        "params": params,
        "teams": teams,
        "groups": [
            ("day", _("Day")),
            ("month", _("Month")),
            ("user", _("User")),
            ("job", _("Job")),
        ],  # fmt: skip
        "is_platform_admin": permissions.is_platform_admin(request.user),
    }
    try:
        query = report.parse_query(params, request.user, default_team=getattr(request, "team", None) or None)
    except report.QueryError as exc:
        context["error"] = {"param": exc.param, "message": str(exc)}
        return render(request, "monitoring/usage.html", context, status=400)

    if request.GET.get("format") == "csv":
        response = StreamingHttpResponse(report.csv_lines(query), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{report.csv_filename(query)}"'
        return response

    sums = report.day_sums(query)
    total, currency = report.totals(query, sums)
    days = report.by_month(query, sums) if query.group_by == "month" else report.by_day(query, sums)
    users = report.by_user(query)
    if query.group_by == "job":
        rows = report.by_job(query, limit=PAGE_JOB_ROWS)
        top = rows[: report.TOP_JOBS]
    else:
        rows = {"day": days, "month": days, "user": users}[query.group_by]
        top = report.by_job(query, limit=report.TOP_JOBS)
    if query.group_by == "month":
        time_series = [_chart_row(row["month"], row) for row in days]
    else:
        time_series = [_chart_row(row["day"], row) for row in report.daily_series(query, days)]
    context.update(
        {
            "query": query,
            "totals": total,
            "currency": currency,
            "rows": table(rows, query.group_by),
            "group_heading": {
                "day": _("By day"),
                "month": _("By month"),
                "user": _("By user"),
                "job": _("By job"),
            }[query.group_by],  # fmt: skip
            "rows_cut": query.group_by == "job" and total["jobs"] > len(rows),
            "top_jobs": table(top, "job"),
            "quota": report.quota_now(query.team) if query.team else [],
            "chart_data": {
                "currency": currency or "",
                "time": time_series,
                "users": [_chart_row(row["user"], row) for row in users[:CHART_USERS]],
                "labels": {
                    "cost": _("Cost"),
                    "core_hours_used": _("Core-hours used"),
                    "core_hours_requested": _("Core-hours requested"),
                    "gpu_hours_requested": _("GPU-hours requested"),
                    "gpu_hours_used": _("GPU-hours used"),
                    "hours": _("Hours"),
                },
            },
            "csv_query": _csv_query(query),
        }
    )
    return render(request, "monitoring/usage.html", context)


def _csv_query(query: report.UsageQuery) -> str:
    return urlencode(
        {
            "team": query.team_label,
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "group_by": query.group_by,
            "format": "csv",
        }
    )
