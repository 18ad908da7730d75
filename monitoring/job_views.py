"""The job page's usage: the JSON its charts poll, and the panel monitoring adds to the page (jobs.panels)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from jobs.models import Job
from jobs.selectors import jobs_visible
from jobs.state import ACTIVE
from monitoring import series
from teams import permissions

# How often a running job's charts ask again, by the resolution served: raw samples come about every ten
# seconds (and only the new ones are sent), a grouped point grows slowly (and the whole series is sent).
POLL_SECONDS = {"raw": 5, "minute": 30, "hour": 300, "day": 300}


def _resolution_label(name: str) -> str:
    return {
        "raw": _("every sample"),
        "minute": _("one point a minute"),
        "hour": _("one point an hour"),
        "day": _("one point a day"),
    }[name]


@login_required
@require_GET
def job_usage(request: HttpRequest, public_id: str) -> JsonResponse:
    """A job's usage series and efficiency, for whoever may see the job (404 for anyone else). ``?after=<ms>``:
    the newest point the caller has (raw series then hold only what came since)."""
    job = permissions.get_or_404(jobs_visible(request.user), request.user, public_id=public_id)
    after = None
    if request.GET.get("after"):
        try:
            # Times go out rounded to the millisecond: half a millisecond on leaves out the point given.
            after = datetime.fromtimestamp((int(request.GET["after"]) + 0.5) / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):
            return JsonResponse({"after": [_("A time in milliseconds since 1970, as the series give it.")]}, status=400)
    data = series.job_usage(job, threshold=settings.EASYAI_LOW_EFFICIENCY, after=after)
    data["active"] = job.state in ACTIVE
    data["resolution_label"] = _resolution_label(data["resolution"]["name"])
    data["poll_seconds"] = POLL_SECONDS[data["resolution"]["name"]] if data["active"] else 0
    return JsonResponse(data)


def usage_panel(request: HttpRequest, job: Job) -> dict[str, Any] | None:
    """The Usage panel's context: where its charts read, and the efficiency shown before they load. A job that
    never ran (nothing sampled, never started) has nothing to show."""
    if job.started_at is None:
        return None
    efficiency = series.job_efficiency(job, threshold=settings.EASYAI_LOW_EFFICIENCY)
    rows = [
        {
            "resource": resource,
            "value": efficiency["values"][resource],
            "percent": None if efficiency["values"][resource] is None else round(100 * efficiency["values"][resource]),
            "low": resource in efficiency["low"],
        }
        for resource in series.RESOURCES
    ]
    return {
        "url": reverse("job-usage", args=[job.public_id]),
        "efficiency": rows,
        "threshold_percent": round(100 * settings.EASYAI_LOW_EFFICIENCY),
        "sampled": any(value is not None for value in efficiency["values"].values()),
        "active": job.state in ACTIVE,
    }
