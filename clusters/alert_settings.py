"""A cluster's alert settings (keys of ``Cluster.settings``), read with their defaults and checked when saved.

- ``idle_gpu_threshold``: a GPU job whose GPU utilisation stays under this percentage (0-100) is idle;
  default EASYAI_IDLE_GPU_THRESHOLD.
- ``idle_gpu_minutes``: for this many minutes, it tells its owner; 0 turns the idle alert off; default
  EASYAI_IDLE_GPU_MINUTES.
- ``idle_gpu_action``: ``alert`` (tell the owner) or ``stop`` (tell the owner and stop the job, reason ``idle``).
- ``pending_alert_minutes``: a job still waiting to start after this many minutes tells its owner why; 0 turns
  it off; default EASYAI_PENDING_ALERT_MINUTES.

Saved settings are checked (``problems``: each wrong key named, nothing saved); a value that slipped past
(an older row) is read as the default rather than break the alerts pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.utils.translation import gettext as _

IDLE_GPU_ACTIONS = ("alert", "stop")


@dataclass(frozen=True)
class AlertSettings:
    idle_gpu_threshold: float  # percent
    idle_gpu_minutes: float  # 0: no idle alert
    idle_gpu_action: str  # "alert" or "stop"
    pending_alert_minutes: float  # 0: no pending alert


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(values: Any) -> list[str]:
    """What is wrong with the alert keys of a cluster's settings, each naming its key (empty: nothing)."""
    if not isinstance(values, dict):
        return []
    found = []
    threshold = values.get("idle_gpu_threshold")
    if threshold is not None and not (_number(threshold) and 0 <= threshold <= 100):
        found.append(_("idle_gpu_threshold: a GPU utilisation in percent, a number from 0 to 100."))
    for key in ("idle_gpu_minutes", "pending_alert_minutes"):
        value = values.get(key)
        if value is not None and not (_number(value) and 0 <= value <= 365 * 24 * 60):
            found.append(_("%(key)s: a number of minutes, 0 (off) or more.") % {"key": key})
    action = values.get("idle_gpu_action")
    if action is not None and action not in IDLE_GPU_ACTIONS:
        found.append(
            _("idle_gpu_action: %(choices)s, not %(value)r.")
            % {"choices": " or ".join(IDLE_GPU_ACTIONS), "value": action}
        )
    return found


def alert_settings(values: Any) -> AlertSettings:
    """The alert settings of a cluster's settings dict, each key that is missing or wrong read as its default."""
    values = values if isinstance(values, dict) else {}

    def pick(key: str, default: float, top: float) -> float:
        value = values.get(key)
        return float(value) if _number(value) and 0 <= value <= top else float(default)

    action = values.get("idle_gpu_action")
    return AlertSettings(
        idle_gpu_threshold=pick("idle_gpu_threshold", django_settings.EASYAI_IDLE_GPU_THRESHOLD, 100),
        idle_gpu_minutes=pick("idle_gpu_minutes", django_settings.EASYAI_IDLE_GPU_MINUTES, 365 * 24 * 60),
        idle_gpu_action=action if action in IDLE_GPU_ACTIONS else "alert",
        pending_alert_minutes=pick(
            "pending_alert_minutes", django_settings.EASYAI_PENDING_ALERT_MINUTES, 365 * 24 * 60
        ),
    )
