"""The Usage page: what a team's jobs used and cost (or every team's, for platform admins), as charts and tables,
with the team's quota against what it holds now, the most costly jobs and a CSV download.

The view parses the query, asks ``monitoring.report`` and renders; the charts are drawn by
``static/easyai/usage.js`` from the figures embedded with ``json_script`` (no inline script).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
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

    total, currency = report.totals(query)
    days = report.by_month(query) if query.group_by == "month" else report.by_day(query)
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
            "rows": rows,
            "group_heading": {
                "day": _("By day"),
                "month": _("By month"),
                "user": _("By user"),
                "job": _("By job"),
            }[query.group_by],  # fmt: skip
            "rows_cut": query.group_by == "job" and total["jobs"] > len(rows),
            "top_jobs": top,
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
