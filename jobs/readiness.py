"""Endpoint readiness: an endpoint behind the portal's proxy is "ready" once it answered its readiness check.

A task's named endpoints (``Task.endpoints``, name -> host:port) are reported by
the backend as soon as the task runs, which is before the server in it listens.
The sync pass probes every endpoint that has a readiness check and is not ready
yet, and records the ones that answered in ``Task.ready_endpoints``; the proxy
routes only to those, and the products built on endpoints (notebooks,
TensorBoard, and the apps and model services to come) say "running" only then.
Pages and the API read the recorded answer; they never probe.

The checks come from the apps that know what serves an endpoint: each registers
one per job framework in its ``AppConfig.ready()`` (the jobs app may not import
them). An endpoint without a check (a job's own ``ports``) is ready as soon as
its address is known. A role's background service (the spec's ``services``) has one rule whatever the
framework: with a ``health`` path it is ready once ``GET http://{address}{health}`` answers below 500 (a
service that says 401 or 404 there is up); without one, once its address is known.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.dispatch import Signal

from jobs.spec.toolbox import services_of

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0  # a pass probes concurrently; one endpoint that hangs holds its pass this long at most
PROBE_THREADS = 16


@dataclass(frozen=True)
class Endpoint:
    """One named endpoint of a running task, as the readiness check needs it."""

    cluster: Any  # the Cluster row: the check goes where the proxy goes (its ingress, when it has one)
    job_id: str  # public id
    framework: str
    task: str  # "{role}-{index}"
    name: str
    address: str  # host:port the backend reported
    # For a role's background service: its health path ("" when it has none); None for any other endpoint.
    health: str | None = None


@dataclass(frozen=True)
class Probe:
    """An HTTP GET that answers 2xx or 3xx once the endpoint's server is up."""

    address: str  # host:port to connect to
    path: str  # request target, e.g. /endpoints/j-…/notebook-0/jupyter/api/status
    headers: dict[str, str] = field(default_factory=dict)
    ready_below: int = 400  # the answers from 200 up to this status (excluded) say "ready"


# Sent by the sync pass once an endpoint answered its check and was recorded ready: framework, job_id (public),
# task, name. Receivers (an app that shows start-up times) must be quick and must not raise.
endpoint_ready = Signal()

# framework -> check: the Probe for an endpoint of a job of that framework, or None when it has no check.
Check = Callable[[Endpoint], Probe | None]
_checks: dict[str, Check] = {}


def register(framework: str, check: Check) -> None:
    """Called from an app's ``AppConfig.ready()``: endpoints of this framework's jobs are probed with ``check``."""
    _checks[framework] = check


SERVICE_READY_BELOW = 500


def probe_for(endpoint: Endpoint) -> Probe | None:
    if endpoint.health is not None:  # a background service: its own rule, not its framework's
        return Probe(endpoint.address, endpoint.health, ready_below=SERVICE_READY_BELOW) if endpoint.health else None
    check = _checks.get(endpoint.framework)
    return check(endpoint) if check is not None else None


def has_check(endpoint: Endpoint) -> bool:
    return probe_for(endpoint) is not None


def answers(probe: Probe, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when the endpoint's server answered the probe with 2xx or 3xx (below ``probe.ready_below``).

    No environment proxies (the portal reaches pod IPs and its ingress directly, as its own proxy does), and a
    refused connection, a timeout, a 5xx (an ingress with no ready backend) or a 4xx (an ingress that has no
    route for the path yet) all mean "not yet".
    """
    try:
        where = urlsplit("//" + probe.address)  # host:port, [v6]:port, or an ingress host without a port (80)
        host, port = where.hostname, where.port or 80
    except ValueError:
        return False
    if not host:
        return False
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", probe.path, headers=probe.headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        log.debug("endpoint %s%s not ready: %s", probe.address, probe.path, exc)
        return False
    finally:
        connection.close()
    return 200 <= status < probe.ready_below


def probe_all(probes: Iterable[tuple[Any, Probe]]) -> set[Any]:
    """The keys whose probe answered; probed together (PROBE_THREADS at a time), not one timeout after another."""
    pending = list(probes)
    if not pending:
        return set()
    if len(pending) == 1:
        key, probe = pending[0]
        return {key} if answers(probe) else set()
    with ThreadPoolExecutor(max_workers=min(PROBE_THREADS, len(pending))) as pool:
        results = pool.map(lambda item: (item[0], answers(item[1])), pending)
        return {key for key, ok in results if ok}


def mark_ready(job: Any, task: Any, names: list[str]) -> bool:
    """Record that these endpoints of a running task answered their check (only while it still runs: a stop
    recorded meanwhile leaves none marked ready), and say so to ``endpoint_ready``'s receivers."""
    from jobs.models import Task

    newly = [name for name in names if name not in (task.ready_endpoints or [])]
    ready = sorted({*(task.ready_endpoints or []), *names})
    if not Task.objects.filter(pk=task.pk, state=Task.State.RUNNING).update(ready_endpoints=ready):
        return False
    task.ready_endpoints = ready
    for name in newly:
        endpoint_ready.send(sender=None, framework=job.framework, job_id=job.public_id, task=task.name, name=name)
    return True


# --- where an endpoint is reached --------------------------------------------------------------------------

# (job_id, task, name) -> the absolute URL of a task's named endpoint behind the portal's proxy. The endpoints
# app knows the proxy's origin and paths and registers it in its AppConfig.ready() (the jobs app may not import
# it); without it, faces of the jobs app show no link.
LinkBuilder = Callable[[str, str, str], str]
_link: list[LinkBuilder] = []


def register_link(builder: LinkBuilder) -> None:
    _link[:] = [builder]


def endpoint_link(job_id: str, task: str, name: str) -> str:
    """Where a browser or a client reaches a task's named endpoint ("" when no app said where)."""
    return _link[0](job_id, task, name) if _link else ""


def service_links(job: Any, tasks: Iterable[Any], *, may_open: bool) -> list[dict[str, Any]]:
    """Each task's background services (the spec's role ``services``): task, name, port, health, whether it is
    ready, and its link (only for those who may open the job's endpoints: ``may_open``)."""
    services = services_of(job.spec)
    result = []
    for task in tasks:
        for service in (service for role, service in services if role == task.role):
            name = service["name"]
            result.append({
                "task": task.name, "name": name, "port": service["port"], "health": service.get("health", ""),
                "ready": job.state == "running" and bool(task.ready_address(name)),
                "url": endpoint_link(job.public_id, task.name, name) if may_open else "",
            })  # fmt: skip
    return result
