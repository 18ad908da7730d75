"""The notebooks' scheduled steps: lease expiry, idle shutdown of notebooks and of TensorBoards.

The scheduler's tick calls ``enqueue_due`` every half second; it enqueues one
``scan`` at most every SCAN_EVERY_S seconds (a cache mark, so several
schedulers do not pile scans up). Each step is idempotent: stopping a job that
another worker already stopped changes nothing.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from endpoints.proxy import upstream_of, upstream_token
from jobs import readiness
from jobs import services as job_services
from jobs.state import ACTIVE, Input, JobState
from notebooks import services
from notebooks.models import NOTEBOOK_TASK, Notebook, TensorBoard, endpoint_path
from notebooks.selectors import _TASKS

log = logging.getLogger(__name__)

SCAN_EVERY_S = 30
STATUS_TIMEOUT_S = 3.0


def idle_minutes() -> int:
    return int(settings.EASYAI_NOTEBOOK_IDLE_MINUTES)


def tensorboard_idle_minutes() -> int:
    return int(settings.EASYAI_TENSORBOARD_IDLE_MINUTES)


def enqueue_due() -> bool:
    """Called on every scheduler tick: enqueue a scan when none was enqueued in the last SCAN_EVERY_S seconds."""
    if not cache.add("easyai:notebooks-scan", 1, timeout=SCAN_EVERY_S):
        return False
    from django_q.tasks import async_task

    async_task("notebooks.tasks.scan")
    return True


def scan(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {
        "expired": len(notebooks_expire(now)),
        "idle": len(notebooks_idle(now)),
        "tensorboards_idle": len(tensorboards_idle(now)),
    }


def _stop(notebook: Notebook, reason: str, message: str) -> bool:
    try:
        services.notebook_stop(notebook=notebook, reason=reason, message=message)
    except services.NotebookActionRefused:
        return False  # it ended meanwhile
    return True


def notebooks_expire(now: datetime | None = None) -> list[int]:
    """Stop every running notebook whose lease has ended (reason ``lease_expired``)."""
    now = now or timezone.now()
    stopped = []
    due = Notebook.objects.filter(expires_at__lte=now, job__state__in=ACTIVE).select_related("job")
    for notebook in due:
        when = notebook.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if _stop(notebook, "lease_expired", f"Its lease of {notebook.lease_hours} h ended at {when}."):
            stopped.append(notebook.pk)
    return stopped


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _get_json(url: str, host: str = "", token: str = "") -> dict | None:
    # Straight to the backend's endpoint (not through the proxy, which would count as a visit); through the
    # cluster's ingress, with its host, where it has one.
    headers = {"Host": host} if host else {}
    if token:
        headers["Authorization"] = f"token {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=STATUS_TIMEOUT_S) as response:
            data = json.loads(response.read(1 << 20))
    except (OSError, ValueError, urllib.error.URLError) as exc:
        log.info("activity of %s unknown: %s", url, exc)
        return None
    return data if isinstance(data, dict) else None


def last_activity(notebook: Notebook, address: str) -> datetime | None:
    """When the server last saw kernel, terminal or API activity, as it reports it; None when it cannot say."""
    vscode = notebook.kind == Notebook.Kind.VSCODE
    address, host = upstream_of(notebook.cluster, address, strip_prefix=vscode)
    if vscode:
        data = _get_json(f"http://{address}/healthz", host)  # code-server: {"status", "lastHeartbeat": ms}
        beat = (data or {}).get("lastHeartbeat")
        return datetime.fromtimestamp(beat / 1000, tz=UTC) if isinstance(beat, int | float) and beat > 0 else None
    # Jupyter Server: GET {base_url}api/status -> {"last_activity": ISO time, "kernels", "connections"};
    # the status call itself does not count as activity.
    path = endpoint_path(notebook.job.public_id, NOTEBOOK_TASK, "jupyter")
    token = upstream_token(notebook.cluster, "notebook", notebook.job.public_id, "jupyter")
    data = _get_json(f"http://{address}{path}api/status", host, token)
    return _parse_time((data or {}).get("last_activity", ""))


def endpoint_readiness(endpoint: readiness.Endpoint) -> readiness.Probe | None:
    """The readiness check of a notebook's or TensorBoard's server, where the proxy reaches it (the sync pass
    probes it; registered in ``NotebooksConfig.ready``)."""
    prefix = endpoint_path(endpoint.job_id, endpoint.task, endpoint.name)
    if endpoint.framework == "notebook" and endpoint.name == "jupyter":
        path = prefix + "api/status"  # Jupyter Server answers 200 here once it serves its base URL
    elif endpoint.framework == "notebook" and endpoint.name == "vscode":
        path = "/healthz"  # code-server serves at "/", not under the prefix
    elif endpoint.framework == "tensorboard" and endpoint.name == "tensorboard":
        path = prefix  # its page, under --path_prefix
    else:
        return None
    address, host = upstream_of(endpoint.cluster, endpoint.address, strip_prefix=endpoint.name == "vscode")
    headers = {"Host": host} if host else {}
    token = upstream_token(endpoint.cluster, endpoint.framework, endpoint.job_id, endpoint.name)
    if token:
        headers["Authorization"] = f"token {token}"
    return readiness.Probe(address, path, headers)


def notebooks_idle(now: datetime | None = None) -> list[int]:
    """Stop every running notebook with no activity for EASYAI_NOTEBOOK_IDLE_MINUTES (reason ``idle``)."""
    now = now or timezone.now()
    limit = timedelta(minutes=idle_minutes())
    stopped = []
    running = (
        Notebook.objects.filter(job__state=JobState.RUNNING).select_related("job", "cluster").prefetch_related(_TASKS)
    )
    for notebook in running:
        address = notebook.endpoint_address
        if not address:
            continue
        seen = last_activity(notebook, address)
        if seen is None:
            continue  # never stop on a failed look: the lease still bounds it
        if notebook.last_activity_at is None or seen > notebook.last_activity_at:
            Notebook.objects.filter(pk=notebook.pk).update(last_activity_at=seen)
            notebook.last_activity_at = seen
        since = max(t for t in (notebook.last_activity_at, notebook.job.started_at) if t is not None)
        if now - since >= limit:
            message = (
                f"No kernel or terminal activity for {idle_minutes()} minutes (last at {since:%Y-%m-%d %H:%M} UTC)."
            )
            if _stop(notebook, "idle", message):
                stopped.append(notebook.pk)
    return stopped


def tensorboards_idle(now: datetime | None = None) -> list[int]:
    """Stop every TensorBoard nobody opened through the proxy for EASYAI_TENSORBOARD_IDLE_MINUTES."""
    now = now or timezone.now()
    limit = timedelta(minutes=tensorboard_idle_minutes())
    stopped = []
    for board in TensorBoard.objects.filter(job__state__in=ACTIVE).select_related("job"):
        job = board.job
        seen = cache.get(services.access_key(job.public_id))
        last = datetime.fromtimestamp(seen, tz=UTC) if isinstance(seen, int | float) else None
        since = max(t for t in (last, job.started_at, job.created_at) if t is not None)
        if now - since < limit:
            continue
        try:
            job_services.job_stop(
                job=job,
                event=Input.STOP,
                reason="idle",
                message=f"Not opened for {tensorboard_idle_minutes()} minutes.",
            )
        except job_services.JobActionRefused:
            continue
        stopped.append(board.pk)
    return stopped
