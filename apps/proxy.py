"""The apps' proxy: ``/apps/{team}/{name}/…`` on the endpoint origin, HTTP and websockets, to an app's run.

It is the endpoint proxy (``endpoints/proxy.py``: the relay, the tickets and credential cookies, the socket
checks) with an app's own answers: the key and path of an app, who may open it (``teams.permissions``
Action.OPEN: the team, and anyone when the app is public or the named users when it is shared), and what a
visitor sees while it is not up. A sleeping app is woken by the first request: a browser gets a "starting…"
page that reloads itself until the app answers, an API caller 503 with ``Retry-After``. Until its run answered
its health check nothing goes through; the proxy asks the check itself while a visitor waits, so a woken app
opens as soon as it is up rather than at the next sync pass.

An anonymous visitor of an app that is not public is sent to sign in through the portal (a browser) or told
404 (a script): nobody learns more of a team's app than that it is not theirs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from channels.db import database_sync_to_async
from django.utils import translation
from django.utils.translation import gettext as _

from apps import schedule, services, specs
from apps.models import APP_TASK, WEB_PORT, App, AppStatus, app_host_label, app_path
from endpoints import origin as endpoint_origin
from endpoints.proxy import EndpointProxy, Refused, Target, _header, upstream_of
from jobs import readiness
from jobs.state import ACTIVE, JobState
from teams import permissions

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
APP_PATTERN = rf"^apps/(?P<team>{_LABEL})/(?P<app>{_LABEL})(?P<rest>/.*)?$"
log = logging.getLogger(__name__)

RECORD_EVERY_S = 10.0  # how often an app's last request is noted (its idle time counts from it)
PROBE_TIMEOUT_S = 0.5
PROBE_EVERY_S = 0.2


@dataclass(frozen=True)
class AppTarget(Target):
    app_pk: int = 0


class Waking(Refused):
    """503 while the app starts: a browser gets the starting page, a script Retry-After."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(503, message)
        self.name = name


_probed: dict[str, float] = {}


def _probe(app: App) -> bool:
    """Ask the run's health check now (a visitor is waiting; at most every PROBE_EVERY_S per run, however many
    wait); record it ready if it answered."""
    now = time.monotonic()
    if now - _probed.get(app.job.public_id, -PROBE_EVERY_S) < PROBE_EVERY_S:
        return False
    if len(_probed) > 10_000:
        _probed.clear()
    _probed[app.job.public_id] = now
    task = app._task()
    address = (task.endpoints or {}).get(WEB_PORT, "") if task is not None else ""
    if not address or task.state != "running":
        return False
    probe = specs.app_readiness(
        readiness.Endpoint(app.cluster, app.job.public_id, "app", APP_TASK, WEB_PORT, address)
    )
    if probe is None or not readiness.answers(probe, timeout=PROBE_TIMEOUT_S):
        return False
    return readiness.mark_ready(app.job, task, [WEB_PORT])


def wakes(scope: dict[str, Any] | None) -> bool:
    """Whether a request may wake a sleeping app: a page opened in a browser (a navigation) or a script's call
    with a token. An open tab's own traffic (its health pings, its socket reconnecting) does not: else a tab
    left open would keep waking an app that went to sleep."""
    if scope is None or scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD", "POST"):
        return False
    mode = _header(scope, b"sec-fetch-mode")
    if mode:
        return mode == "navigate"
    return bool(_header(scope, b"authorization")) or "text/html" in _header(scope, b"accept")


def authorize(user: Any, team: str, name: str, *, wake: bool = False) -> AppTarget:
    """Where this user's request for the app goes, or Refused (404, 401 to be sent to sign in, 503)."""
    app = (
        App.objects.filter(team__slug=team, name=name)
        .select_related("team", "cluster", "job", "revision")
        .prefetch_related("job__tasks")
        .first()
    )
    anonymous = user is None or not user.is_authenticated
    if app is None or not permissions.can(user, app, permissions.Action.OPEN):
        if anonymous:
            raise Refused(401, _("Sign in to open this app."))
        raise Refused(404, _("No such app."))
    job = app.job
    if job is None or job.state not in ACTIVE:
        if app.status == AppStatus.SLEEPING:
            if not wake:
                raise Refused(503, _("The app %(name)s is asleep: open it to wake it.") % {"name": app.name})
            try:
                woke = services.app_wake(app=app)
            except Exception:  # the cluster or the database failed it: said, never a 500
                log.exception("app %s/%s could not wake", team, name)
                raise Refused(503, _("The app %(name)s could not wake; try again.") % {"name": app.name}) from None
            if not woke:
                app.refresh_from_db(fields=["status", "message", "job"])
                if app.status == AppStatus.SLEEPING and app.message:
                    raise Refused(503, _public_message(app, user))
            raise Waking(_("The app %(name)s is waking up.") % {"name": app.name}, app.name)
        if app.status == AppStatus.STOPPED:
            raise Refused(503, _("The app %(name)s is stopped; its owner can start it.") % {"name": app.name})
        raise Refused(503, _public_message(app, user))
    address = ""
    if job.state == JobState.RUNNING:
        task = app._task()
        address = task.ready_address(WEB_PORT) if task is not None else ""
        if not address and _probe(app):
            address = task.ready_address(WEB_PORT)
    if not address:
        raise Waking(_("The app %(name)s is starting.") % {"name": app.name}, app.name)
    # Straight to the run (its pod's IP on Kubernetes): an ingress routes only /endpoints/… paths.
    address, _host = upstream_of(app.cluster, address, strip_prefix=True)
    return AppTarget(address, job.public_id, app_path(team, name), False, app_pk=app.pk)


def _public_message(app: App, user: Any) -> str:
    """Why the app is not running: the reason itself to its team, no details to anyone else."""
    if app.message and permissions.can(user, app, permissions.Action.VIEW):
        return _("The app %(name)s is not running: %(why)s") % {"name": app.name, "why": app.message.splitlines()[0]}
    return _("The app %(name)s is not running.") % {"name": app.name}


_STARTING_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="refresh" content="1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;display:flex;align-items:center;justify-content:center;height:90vh;
color:#333}}.box{{text-align:center}}.spin{{width:36px;height:36px;margin:0 auto 16px;border:4px solid #ddd;
border-top-color:#2563eb;border-radius:50%;animation:s 1s linear infinite}}@keyframes s{{to{{transform:rotate(360deg)}}}}
</style></head><body><div class="box" id="easyai-app-starting"><div class="spin"></div><h1>{title}</h1>
<p>{message}</p><p><small>{hint}</small></p></div></body></html>"""


class AppProxy(EndpointProxy):
    """ASGI app for ``http`` and ``websocket`` scopes of APP_PATTERN."""

    def key(self, kwargs: dict[str, Any]) -> str:
        return f"apps/{kwargs['team']}/{kwargs['app']}"

    def prefix(self, kwargs: dict[str, Any]) -> str:
        return app_path(kwargs["team"], kwargs["app"])

    def fits(self, host: str, kwargs: dict[str, Any]) -> bool:
        where = endpoint_origin.origin()
        if not where.wildcard:
            return True
        hostname = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        return hostname == f"{app_host_label(kwargs['team'], kwargs['app'])}.{where.host}"

    thread_sensitive = False  # a starting app's health check may wait on the network: not on the shared thread

    def authorize(self, user: Any, kwargs: dict[str, Any], scope: dict[str, Any] | None = None) -> Target:
        return authorize(user, kwargs["team"], kwargs["app"], wake=wakes(scope))

    def sign_in_url(self, path_and_query: str) -> str:
        """The portal's page that signs a browser in and sends it back with a ticket for the app."""
        return endpoint_origin.portal_url("/apps/open/?" + urlencode({"next": path_and_query}))

    async def refused(self, scope: dict[str, Any], send: Any, refused: Refused) -> None:
        if refused.status == 401:  # a script without a token: no more than "not found"
            refused = Refused(404, _("No such app."))
        html = scope.get("method") in ("GET", "HEAD") and "text/html" in _header(scope, b"accept")
        if not html:
            extra = [(b"retry-after", b"1")] if isinstance(refused, Waking) else []
            body = (refused.message + "\n").encode()
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"), *extra]
            await _send(scope, send, refused.status, headers, body)
            return
        if isinstance(refused, Waking):
            title = _("Starting %(name)s…") % {"name": refused.name}
            hint = _("This page turns into the app as soon as it is up.")
        else:
            title, hint = str(refused.status), ""
        body = _STARTING_PAGE.format(
            lang=escape(translation.get_language() or "en"),
            title=escape(title),
            message=escape(refused.message),
            hint=escape(hint),
        ).encode()
        if not isinstance(refused, Waking):
            body = body.replace(b'<meta http-equiv="refresh" content="1">', b"").replace(b'<div class="spin"></div>', b"")
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
        if isinstance(refused, Waking):
            headers.append((b"retry-after", b"1"))
        await _send(scope, send, refused.status, headers, body)

    async def used(self, target: Target) -> None:
        pk = getattr(target, "app_pk", 0)
        now = time.monotonic()
        if now - _noted.get(pk, -RECORD_EVERY_S) < RECORD_EVERY_S:
            return
        _noted[pk] = now
        try:
            await database_sync_to_async(_note)(pk)
        except Exception:  # a cache hiccup must not fail the request; the next one notes it again
            _noted.pop(pk, None)


_noted: dict[int, float] = {}


def _note(pk: int) -> None:
    from django.core.cache import cache

    cache.set(schedule.access_key(pk), time.time(), timeout=7 * 86400)


async def _send(scope: dict[str, Any], send: Any, status: int, headers: list, body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})
