"""Small helpers of the job pages that read or format; nothing here writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Job ids a page may ask the states of at once; a page shows at most 50 rows.
MAX_STATE_IDS = 200

# The jobs list's sort choices: each is an ordering the list selector (and so the API) accepts.
ORDERING_CHOICES = (
    ("-created_at", gettext_lazy("Newest first")),
    ("created_at", gettext_lazy("Oldest first")),
    ("name", gettext_lazy("Name, A to Z")),
    ("-name", gettext_lazy("Name, Z to A")),
    ("state", gettext_lazy("State")),
    ("-started_at", gettext_lazy("Started, latest first")),
    ("started_at", gettext_lazy("Started, earliest first")),
)


def format_duration(duration: timedelta | None) -> str:
    """A duration as people read it: 45s, 3m 20s, 2h 5m, 3d 4h."""
    if duration is None:
        return ""
    seconds = max(int(duration.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return _("%(d)sd %(h)sh") % {"d": days, "h": hours}
    if hours:
        return _("%(h)sh %(m)sm") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)sm %(s)ss") % {"m": minutes, "s": seconds}
    return _("%(s)ss") % {"s": seconds}


def errors_of(exc: ValidationError) -> dict[str, list[str]]:
    """A service's ValidationError as path -> messages (errors without a path go under ``spec``)."""
    if hasattr(exc, "error_dict"):
        return {path: list(messages) for path, messages in exc.message_dict.items()}
    return {"spec": list(exc.messages)}


def list_params(params: Mapping[str, str], current_team_slug: str | None) -> dict[str, str]:
    """The jobs list's filters with the page's default scope: the current team unless ``team=all``.

    Several states come as ``state=a,b`` (as the API takes them) or as one ``state`` per ticked box;
    either way the result holds them comma-separated. Unknown orderings fall back to the default
    rather than failing the page.
    """
    from jobs.selectors import ORDERINGS

    result = {key: params[key] for key in params}
    values = params.getlist("state") if hasattr(params, "getlist") else [params.get("state") or ""]
    states = [state.strip() for value in values for state in value.split(",") if state.strip()]
    if states:
        result["state"] = ",".join(dict.fromkeys(states))
    else:
        result.pop("state", None)
    team = result.get("team")
    if team is None:
        if current_team_slug:
            result["team"] = current_team_slug
    elif team in ("", "all"):
        result.pop("team")
    if result.get("ordering") and result["ordering"] not in ORDERINGS:
        result.pop("ordering")
    return result
