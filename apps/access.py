"""What apps plug into the apps below them (registered in ``AppsConfig.ready()``)."""

from __future__ import annotations

from typing import Any

from apps import services
from apps.models import App, Visibility
from endpoints.proxy import Refused


def in_audience(obj: Any, user: Any) -> bool:
    """``teams.permissions`` asks this for Action.OPEN: a public app opens for anyone, a shared one for the
    users it is shared with as well as its team."""
    if not isinstance(obj, App):
        return False
    if obj.visibility == Visibility.PUBLIC:
        return True
    if obj.visibility == Visibility.SHARED and user is not None and user.is_authenticated and user.is_active:
        return obj.shared_with.filter(pk=user.pk).exists()
    return False


def secrets_of(job: Any) -> dict[str, str]:
    """The secrets of the app a job runs, for its task's environment (read when the submit worker describes the
    job; the check before it is recorded needs none)."""
    if job.pk is None:
        return {}
    app = App.objects.filter(job=job).only("secrets_encrypted").first()
    return app.secrets if app is not None else {}


def endpoint_access(user: Any, job: Any, name: str) -> bool:
    """An app's run is not opened as a job's endpoint: it is served under the app's own path."""
    app = App.objects.filter(job=job).select_related("team").first()
    where = app.url if app is not None else "/apps/"
    raise Refused(404, f"An app is opened at its own address: {where}")


def run_ready(sender: Any, framework: str, job_id: str, task: str, name: str, **kwargs: Any) -> None:
    """The sync pass (or the proxy) found an app's run healthy: its start-up time is recorded."""
    if framework == "app":
        services.record_ready(job_id)
