"""What the apps above endpoints add to it, filled in their ``AppConfig.ready()``.

The proxy serves any job's named ports and knows no product feature. Who may open a job's endpoints is the
permission module's ``Action.OPEN`` (a personal job: its owner alone); an app whose jobs (by framework) have a
further rule registers it here, and an app that tracks activity connects to ``endpoint_used``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

# rule(user, job, name) -> whether the upstream expects the path without its /endpoints/… prefix; it raises
# endpoints.proxy.Refused to refuse. Called after the permission module let the user see the job.
AccessRule = Callable[[Any, Any, str], bool]

_access_rules: dict[str, AccessRule] = {}

# Sent with asend (at most every ACCESS_EVERY_S per job, from the proxy's event loop: receivers are best async) when a job's endpoint served a
# request: job_id, when (a UNIX time). Receivers must be quick and must not raise.
endpoint_used = Signal()


def register_access(framework: str, rule: AccessRule) -> None:
    _access_rules[framework] = rule


def access_rule(framework: str) -> AccessRule | None:
    return _access_rules.get(framework)
