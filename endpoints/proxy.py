"""The endpoint proxy: every task's named web endpoint, HTTP and websockets, on an origin apart from the portal's.

``/endpoints/{job}/{task}/{name}/…`` on the endpoint origin (``endpoints/origin.py``: where it is,
its tickets and credential cookies) is relayed to the address the backend
reported for that endpoint (``Task.endpoints``: a free host port on 127.0.0.1
locally, the pod's IP on Kubernetes), or, on a Kubernetes cluster with an
ingress host, to that ingress (with its host as the Host header), which routes
the same path to the task's Service. It is a plain ASGI application that
``easyai_site/asgi.py`` gives every request for the endpoint origin's host (``endpoints/routing.py``), so that
bodies stream both ways without Django's request cycle buffering them. It never sees the portal's session: a
browser is authorised by its per-endpoint credential cookie (from a ticket the portal made), a client by its
API token in ``Authorization: Token <key>``; a state-changing request or a websocket that rides on the cookie
must come from the endpoint's own origin.

Who gets through (``teams.permissions`` decides, and the rule an app registered for its jobs'
framework in ``endpoints/registry.py``): a notebook only to its owner
(a notebook is personal: not team-mates, not team admins, not platform admins);
a TensorBoard to whoever may see its job and every job it shows; any other
job's endpoint to whoever may see the job. Anonymous browsers are sent to sign
in, other anonymous clients get 401, outsiders 404, team-mates refused a
notebook 403. Every answer is asked again of the permission module within
``AUTHORIZED_FOR_S``, so a revoked share or membership bites within seconds.

The upstream sees the full path (Jupyter's ``base_url`` and TensorBoard's
``--path_prefix`` are set to it), the client's Host (Jupyter compares it with
Origin and Referer), ``X-Forwarded-For/-Proto/-Host/-Prefix``, and none of the
portal's credentials: its session and CSRF cookies and its API token are taken
out, and upstream cookies may not overwrite them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from channels.db import database_sync_to_async
from django.conf import settings

from clusters.crypto import endpoint_password_hash, endpoint_token
from endpoints import origin as endpoint_origin
from endpoints import registry
from endpoints.paths import endpoint_path
from jobs.spec.toolbox import services_of

log = logging.getLogger(__name__)

# job, task ("{role}-{index}"), endpoint name, and the rest of the path (absent: no trailing slash yet).
ENDPOINT_PATTERN = (
    r"^endpoints/(?P<job_id>j-[a-z0-9]{8})/(?P<task>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?-[0-9]+)"
    r"/(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?P<rest>/.*)?$"
)

HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection",
    }
)  # fmt: skip
# Set by the websocket handshake on each leg: the upstream client makes its own.
WS_HANDSHAKE = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
AUTHORIZED_FOR_S = 5.0  # how long one permission answer is reused: a revoked membership bites within this
CODE_SERVER_COOKIE = "code-server-session"  # the cookie code-server keeps its session in
ACCESS_EVERY_S = 10.0  # how often a job's last access is written to the cache (TensorBoard's idle shutdown)
CONNECT_TIMEOUT_S = 10.0
WS_CLOSE_SENDABLE = range(3000, 5000)

CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
CLOSE_UNAUTHENTICATED = 4401
CLOSE_UNAVAILABLE = 4503
CLOSE_REVOKED = 4410  # open, and no longer allowed: as the portal's own sockets (docs/websockets.md)


class Refused(Exception):  # noqa: N818 - reads as what happened
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    job_id: str
    prefix: str  # /endpoints/{job}/{task}/{name}/
    strip_prefix: bool  # the upstream serves at "/" (code-server has no base-path setting)
    host: str = ""  # the Host header the upstream gets instead of the client's: an ingress routes by it
    token: str = ""  # the upstream's own token (a Jupyter on a cluster): sent as "Authorization: token …"
    cookie: str = ""  # the upstream's own session cookie, "name=value" (a VS Code notebook's code-server)


def upstream_of(cluster: Any, address: str, *, strip_prefix: bool = False) -> tuple[str, str]:
    """(where to connect, Host header to send: "" keeps the client's) for an endpoint the backend reported.

    Through the cluster's ingress when it has one; to the reported address otherwise. An endpoint served
    at "/" (code-server) cannot be routed by its path, so it stays on the pod's address.
    """
    ingress = (getattr(cluster, "ingress_host", "") or "").strip()
    if address and ingress and getattr(cluster, "kind", "") == "kubernetes" and not strip_prefix:
        return ingress, ingress
    return address, ""


def upstream_cookie(cluster: Any, framework: str, job_id: str, name: str) -> str:
    """The session cookie a VS Code notebook's code-server demands (its HASHED_PASSWORD); "" for anything else."""
    if framework == "notebook" and name == "vscode" and getattr(cluster, "kind", "") in ("kubernetes", "local"):
        return f"{CODE_SERVER_COOKIE}={endpoint_password_hash(job_id)}"
    return ""


def upstream_token(cluster: Any, framework: str, job_id: str, name: str) -> str:
    """The token a notebook's Jupyter demands (its JUPYTER_TOKEN, on a cluster and locally); "" for anything else."""
    if framework == "notebook" and name == "jupyter" and getattr(cluster, "kind", "") in ("kubernetes", "local"):
        return endpoint_token(job_id)
    return ""


# --- who may reach what ------------------------------------------------------------------------


def authorize(user: Any, job_id: str, task_name: str, name: str) -> Target:
    """The endpoint's address if this user may open it; Refused (with the HTTP status) otherwise."""
    from jobs.models import Job, Task
    from jobs.state import ACTIVE, JobState
    from teams import permissions

    if user is None or not user.is_authenticated:
        raise Refused(401, "Sign in, or present an API token (Authorization: Token <key>).")
    job = (
        permissions.restrict(Job.objects.filter(deleted=False), user)
        .filter(public_id=job_id)
        .select_related("cluster")
        .first()
    )
    if job is None:
        raise Refused(404, f"No job {job_id} that you may see.")
    if not permissions.can(user, job, permissions.Action.OPEN):
        raise Refused(403, f"Job {job_id} is personal: only its owner may open its endpoints.")
    rule = registry.access_rule(job.framework)
    strip = bool(rule(user, job, name)) if rule is not None else False
    role, _, index = task_name.rpartition("-")
    task = Task.objects.filter(job=job, role=role, index=int(index)).first()
    if task is None:
        raise Refused(404, f"Job {job_id} has no task {task_name}.")
    # The spec's named ports, and its roles' background services (each serves under its own name).
    services = {service["name"] for _role, service in services_of(job.spec)}
    declared = name in (job.spec.get("ports") or {}) or name in services
    if not declared:
        raise Refused(404, f"Task {task_name} of job {job_id} serves no endpoint named {name!r}.")
    if job.state not in ACTIVE:
        raise Refused(404, f"Job {job_id} has ended ({job.state}): its endpoints are gone.")
    # Only once it answered its readiness check (jobs/readiness.py): until then it is starting.
    address = task.ready_address(name) if job.state == JobState.RUNNING else ""
    if not address:
        raise Refused(503, f"Job {job_id} is starting: its endpoint {name!r} is not up yet.")
    address, host = upstream_of(job.cluster, address, strip_prefix=strip)
    token = upstream_token(job.cluster, job.framework, job_id, name)
    cookie = upstream_cookie(job.cluster, job.framework, job_id, name)
    return Target(address, job_id, endpoint_path(job_id, task_name, name), strip, host, token, cookie)


_authorized: dict[tuple, tuple[float, Target]] = {}


async def _authorize(site: EndpointProxy, scope: dict[str, Any]) -> Target:
    kwargs = scope["url_route"]["kwargs"]
    user = scope.get("user")
    key = (getattr(user, "pk", None), site.key(kwargs))
    now = time.monotonic()
    hit = _authorized.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    target = await database_sync_to_async(site.authorize, thread_sensitive=site.thread_sensitive)(user, kwargs, scope)
    if len(_authorized) > 10_000:  # many users and endpoints: start over rather than grow
        _authorized.clear()
    _authorized[key] = (now + AUTHORIZED_FOR_S, target)
    return target


def _forget(site: EndpointProxy, scope: dict[str, Any]) -> None:
    _authorized.pop((getattr(scope.get("user"), "pk", None), site.key(scope["url_route"]["kwargs"])), None)


_credential_users: dict[str, tuple[float, Any]] = {}


async def _identify(site: EndpointProxy, scope: dict[str, Any]) -> tuple[Any, str, bytes | None]:
    """Who sends this request, and how: ("token" or "cookie", and a renewed credential cookie when it is due)."""
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return user, "token", None
    kwargs = scope["url_route"]["kwargs"]
    key = site.key(kwargs)
    for value in endpoint_origin.credentials_in(_header(scope, b"cookie")):
        payload = endpoint_origin.credential_read(value, key)
        if payload is None:
            continue
        now = time.monotonic()
        hit = _credential_users.get(value)
        if hit is not None and hit[0] > now:
            user = hit[1]
        else:
            user = await database_sync_to_async(endpoint_origin.user_of)(payload)
            if len(_credential_users) > 10_000:
                _credential_users.clear()
            _credential_users[value] = (now + AUTHORIZED_FOR_S, user)
        if user is None:
            continue
        renew = None
        if time.time() - payload.get("t", 0) > endpoint_origin.CREDENTIAL_RENEW_AFTER_S:
            renew = endpoint_origin.credential_cookie(endpoint_origin.credential_issue(payload), site.prefix(kwargs))
        return user, "cookie", renew
    return None, "", None


def still_allowed(site: EndpointProxy, user_pk: Any, token_key: str, kwargs: dict[str, Any]) -> None:
    """Refused unless the user, read afresh (and their API token, when the socket came with one), may still
    open this endpoint: an open socket's answer is not kept, a share revoked closes it."""
    from django.contrib.auth import get_user_model

    from teams.tokens import user_for_key

    user = get_user_model().objects.filter(pk=user_pk, is_active=True).first() if user_pk is not None else None
    if user is not None and token_key and getattr(user_for_key(token_key), "pk", None) != user.pk:
        user = None
    site.authorize(user, kwargs)


def _token_key(scope: dict[str, Any]) -> str:
    value = _header(scope, b"authorization").split()
    return value[1] if len(value) == 2 and value[0].lower() == "token" else ""


_last_access: dict[str, float] = {}


async def _note_access(job_id: str) -> None:
    """Record that the endpoint was used: the scheduler stops a TensorBoard nobody opened for a while."""
    now = time.monotonic()
    if now - _last_access.get(job_id, -ACCESS_EVERY_S) < ACCESS_EVERY_S:
        return
    _last_access[job_id] = now
    try:
        await registry.endpoint_used.asend(sender=None, job_id=job_id, when=time.time())
    except Exception:  # a cache hiccup must not fail the request; the next one writes again
        _last_access.pop(job_id, None)
        log.warning("could not record access to %s", job_id, exc_info=True)


# --- the upstream client ---------------------------------------------------------------------------

_sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client_session() -> Any:
    """The process's aiohttp session (one per event loop: a server has one loop, tests may start more)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session, _closer = _sessions.get(loop, (None, None))
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, ttl_dns_cache=300),
            # Bodies pass as they are: compressed stays compressed, and Content-Length stays true.
            auto_decompress=False,
            # Never keep an upstream's cookies: the session is shared by every user of the portal.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
            # Only what the client sent: no User-Agent, Accept or Accept-Encoding of aiohttp's own.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        # Closed when the loop's tasks are cancelled at shutdown (asyncio.run does it), not left to the collector.
        _sessions[loop] = (session, loop.create_task(_close_at_shutdown(session)))
    return session


async def _close_at_shutdown(session: Any) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await session.close()
        raise


# --- headers ---------------------------------------------------------------------------------------


def _portal_cookies() -> frozenset[str]:
    """Cookies no upstream gets or sets: the portal's (should a browser send them) and the endpoint credential."""
    return frozenset(
        {
            settings.SESSION_COOKIE_NAME,
            settings.CSRF_COOKIE_NAME,
            endpoint_origin.COOKIE_NAME,
            endpoint_origin.STATE_COOKIE_NAME,
        }
    )


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _as_upstream_origin(value: str, client_host: str, upstream_host: str) -> str:
    """An Origin or Referer of the portal itself, made the upstream's (an app behind an ingress compares it
    with the Host it gets); any other origin passes unchanged, so a cross-site request stays cross-site."""
    try:
        parts = urlsplit(value)
    except ValueError:  # not a URL at all (a bracket left open): not the portal's either
        return value
    if not client_host or parts.netloc.lower() != client_host.lower():
        return value
    return urlunsplit((parts.scheme, upstream_host, parts.path, parts.query, parts.fragment))


def upstream_headers(scope: dict[str, Any], target: Target, *, websocket: bool = False) -> list[tuple[str, str]]:
    """The client's headers for the upstream: hop-by-hop ones and the portal's credentials taken out."""
    client_host = _header(scope, b"host")
    connection_listed = {
        token.strip().lower().encode() for token in _header(scope, b"connection").split(",") if token.strip()
    }
    portal_cookies = _portal_cookies()
    own_cookie = {target.cookie.split("=", 1)[0]} if target.cookie else set()  # the client's copy never counts
    headers: list[tuple[str, str]] = []
    forwarded_for = ""
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.lower()
        if name in HOP_BY_HOP or name in connection_listed or (websocket and name in WS_HANDSHAKE):
            continue
        value = raw_value.decode("latin-1")
        if name == b"authorization" and (target.token or value.split(" ", 1)[0].lower() == "token"):
            continue  # the portal's API token is for the portal only; an upstream token replaces any
        if name == b"cookie":
            kept = [
                part
                for part in (p.strip() for p in value.split(";"))
                if part and part.split("=", 1)[0].strip() not in portal_cookies | own_cookie
            ]
            if not kept:
                continue
            value = "; ".join(kept)
        if name == b"x-forwarded-for":
            forwarded_for = value
            continue
        if name in (b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix"):
            continue  # ours replace whatever the client claimed
        if target.host:
            if name == b"host":
                value = target.host
            elif name in (b"origin", b"referer"):
                value = _as_upstream_origin(value, client_host, target.host)
        headers.append((raw_name.decode("latin-1"), value))
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if peer:
        headers.append(("X-Forwarded-For", f"{forwarded_for}, {peer}" if forwarded_for else peer))
    scheme = scope.get("scheme") or ("ws" if websocket else "http")
    headers.append(("X-Forwarded-Proto", {"ws": "http", "wss": "https"}.get(scheme, scheme)))
    if client_host:
        headers.append(("X-Forwarded-Host", client_host))
    headers.append(("X-Forwarded-Prefix", target.prefix.rstrip("/")))
    if target.token:
        headers.append(("Authorization", f"token {target.token}"))
    if target.cookie:
        at = next((i for i, (n, _v) in enumerate(headers) if n.lower() == "cookie"), None)
        if at is None:
            headers.append(("Cookie", target.cookie))
        else:
            headers[at] = (headers[at][0], f"{headers[at][1]}; {target.cookie}")
    return headers


def rewrite_location(value: str, target: Target, host: str) -> str:
    """A redirect stays under the endpoint's prefix: upstream-absolute URLs become paths, bare paths get it."""
    try:
        parts = urlsplit(value)
    except ValueError:  # not a URL the client could follow either: passed on as it is
        return value
    if parts.scheme in ("http", "https") and parts.netloc:
        if parts.netloc not in (target.address, target.host or target.address, host):
            return value  # somewhere else entirely: the upstream means it
        value = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    elif parts.scheme or parts.netloc:
        return value
    if value.startswith("/") and not value.startswith(target.prefix) and value != target.prefix.rstrip("/"):
        value = target.prefix.rstrip("/") + value
    return value


def rewrite_set_cookie(value: str, target: Target) -> str | None:
    """An upstream cookie, kept to the endpoint's path and this host; None for one named like the portal's."""
    pair, *attributes = value.split(";")
    if pair.split("=", 1)[0].strip() in _portal_cookies():
        return None
    path = ""
    kept = []
    for attribute in attributes:
        key = attribute.split("=", 1)[0].strip().lower()
        if key == "path":
            path = attribute.split("=", 1)[1].strip() if "=" in attribute else ""
        elif key != "domain":
            kept.append(attribute.strip())
    base = target.prefix.rstrip("/")
    if not (path == base or path.startswith(base + "/")):
        path = target.prefix
    return "; ".join([pair.strip(), *kept, f"Path={path}"])


def downstream_headers(raw: Any, target: Target, host: str) -> list[tuple[bytes, bytes]]:
    listed = set()
    for name, value in raw:
        if name.lower() == b"connection":
            listed |= {t.strip().lower().encode() for t in value.decode("latin-1").split(",") if t.strip()}
    headers: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in listed:
            continue
        if lowered == b"location":
            value = rewrite_location(value.decode("latin-1"), target, host).encode("latin-1")
        elif lowered == b"set-cookie":
            cookie = rewrite_set_cookie(value.decode("latin-1"), target)
            if cookie is None:
                continue
            value = cookie.encode("latin-1")
        headers.append((lowered, value))
    return headers


def upstream_url(scope: dict[str, Any], target: Target, *, websocket: bool = False) -> str:
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    path = raw_path.decode("latin-1")
    if target.strip_prefix:
        path = "/" + path[len(target.prefix) :] if path.startswith(target.prefix) else "/"
    query = scope.get("query_string", b"").decode("latin-1")
    if query and "token=" in query:
        # ?token= is how non-browser clients authenticate to the portal: it goes no further.
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"])
    return f"{'ws' if websocket else 'http'}://{target.address}{path}" + (f"?{query}" if query else "")


# --- answers of the proxy itself ---------------------------------------------------------------------


def _wants_html(scope: dict[str, Any]) -> bool:
    return scope.get("method") in ("GET", "HEAD") and "text/html" in _header(scope, b"accept")


async def _drain(receive: Any) -> None:
    """Read the request body the proxy will not forward, so the server can answer."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _answer(scope: dict[str, Any], send: Any, status: int, message: str, extra: list | None = None) -> None:
    headers = [(b"cache-control", b"no-store"), *(extra or [])]
    if _wants_html(scope):
        refresh = '<meta http-equiv="refresh" content="2">' if status in (502, 503) else ""
        body = (
            f'<!doctype html><html><head><meta charset="utf-8">{refresh}<title>{status}</title></head>'
            f"<body><p>{escape(message)}</p></body></html>"
        ).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    else:
        body = (message + "\n").encode()
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})


def _full_path(scope: dict[str, Any]) -> str:
    path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")


# --- the ASGI application ------------------------------------------------------------------------------


class EndpointProxy:
    """ASGI app for ``http`` and ``websocket`` scopes of ENDPOINT_PATTERN (see the module docstring).

    What it serves is said by a few methods, which an app above overrides for paths of its own (apps'
    ``/apps/{team}/{name}/``): the credential key and path prefix of a request's URL kwargs, the host it must
    come to, who may open it (``authorize``, synchronous: it asks the database), what a refusal looks like and
    what a request records. The relay, the tickets and cookies and the socket checks are the same for all.
    """

    def key(self, kwargs: dict[str, Any]) -> str:
        """What a ticket and a credential cookie are for (``endpoints/origin.py``)."""
        return endpoint_origin.endpoint_key(kwargs["job_id"], kwargs["task"], kwargs["name"])

    def prefix(self, kwargs: dict[str, Any]) -> str:
        """The path everything of it is served under, with a trailing slash (its cookies' path)."""
        return f"/endpoints/{self.key(kwargs)}/"

    def fits(self, host: str, kwargs: dict[str, Any]) -> bool:
        """Whether the request's Host is where it is served (under a wildcard origin: its own host)."""
        return endpoint_origin.host_fits(host, kwargs["job_id"], kwargs["task"], kwargs["name"])

    # Whether ``authorize`` runs on the one thread database calls share (quick reads) or on a thread of its own
    # (a site whose answer may wait on the network: an app's health check while it starts).
    thread_sensitive = True

    def authorize(self, user: Any, kwargs: dict[str, Any], scope: dict[str, Any] | None = None) -> Target:
        """Its address for this user, or Refused (with the HTTP status); called in a thread. ``scope``: the
        request asking (None when an open socket is asked about again)."""
        return authorize(user, kwargs["job_id"], kwargs["task"], kwargs["name"])

    async def refused(self, scope: dict[str, Any], send: Any, refused: Refused) -> None:
        """The answer to a refused HTTP request that is not a browser sent to sign in."""
        extra = [(b"retry-after", b"2")] if refused.status == 503 else []
        if refused.status == 401:
            extra.append((b"www-authenticate", b"Token"))
        await _answer(scope, send, refused.status, refused.message, extra)

    def sign_in_url(self, path_and_query: str) -> str:
        """The portal's URL that signs a browser in and sends it back here with a ticket (the same path there)."""
        return endpoint_origin.portal_url(path_and_query)

    async def used(self, target: Target) -> None:
        """A request or a socket message went through (activity tracking)."""
        await _note_access(target.job_id)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        else:
            raise ValueError(f"the endpoint proxy serves http and websocket, not {scope['type']}")

    # --- HTTP ---

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kwargs = scope["url_route"]["kwargs"]
        host = _header(scope, b"host")
        if not self.fits(host, kwargs):
            await _drain(receive)
            await _answer(scope, send, 404, "This endpoint is served at a host of its own, not here.")
            return
        if "rest" not in kwargs:
            # /endpoints/j/t/name -> /endpoints/j/t/name/: relative links of the upstream resolve under it.
            await _drain(receive)
            query = scope.get("query_string", b"")
            location = (
                (scope.get("raw_path") or quote(scope["path"]).encode()) + b"/" + (b"?" + query if query else b"")
            )
            await _answer(scope, send, 308, "Moved under the endpoint's path.", [(b"location", location)])
            return
        query = scope.get("query_string", b"").decode("latin-1")
        ticket = endpoint_origin.ticket_in(query) if endpoint_origin.TICKET_PARAM in query else ""
        if ticket:
            await _drain(receive)
            await self._exchange(scope, send, ticket)
            return
        user, how, renew = await _identify(self, scope)
        scope = dict(scope, user=user)
        if how == "cookie":
            refusal = endpoint_origin.cross_site_refusal(
                scope["method"], host, _header(scope, b"sec-fetch-site"), _header(scope, b"origin")
            )
            if refusal:
                log.info("endpoint %s: %s", scope["path"], refusal)
                await _drain(receive)
                await _answer(scope, send, 403, refusal)
                return
        try:
            target = await _authorize(self, scope)
        except Refused as refused:
            await _drain(receive)
            if refused.status == 401 and _wants_html(scope):
                # The portal signs the browser in if need be, asks the permission module, and sends it back
                # here with a ticket for this endpoint and the state this browser now keeps.
                await self._to_portal(scope, send, refused.message)
            else:
                await self.refused(scope, send, refused)
            return
        await self.used(target)
        await self._relay(scope, receive, send, target, [(b"set-cookie", renew)] if renew else [])

    async def _to_portal(self, scope: dict[str, Any], send: Any, message: str) -> None:
        prefix = self.prefix(scope["url_route"]["kwargs"])
        query = endpoint_origin.without_ticket(scope.get("query_string", b"").decode("latin-1"))
        path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1") + (
            f"?{query}" if query else ""
        )
        state = endpoint_origin.state_new()
        portal = endpoint_origin.with_param(self.sign_in_url(path), endpoint_origin.STATE_PARAM, state)
        headers = [
            (b"location", portal.encode("latin-1")),
            (b"set-cookie", endpoint_origin.state_cookie(state, prefix)),
        ]
        await _answer(scope, send, 302, message, headers)

    async def _exchange(self, scope: dict[str, Any], send: Any, ticket: str) -> None:
        """A ticket from the portal's redirect becomes this endpoint's credential cookie; then the clean URL."""
        kwargs = scope["url_route"]["kwargs"]
        key, prefix = self.key(kwargs), self.prefix(kwargs)
        query = endpoint_origin.without_ticket(scope.get("query_string", b"").decode("latin-1"))
        clean = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1") + (
            f"?{query}" if query else ""
        )
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(scope, send, 405, "A ticket is exchanged by GET only.", [(b"allow", b"GET, HEAD")])
            return
        try:
            states = endpoint_origin.states_in(_header(scope, b"cookie"))
            payload = await database_sync_to_async(endpoint_origin.ticket_redeem)(ticket, key, states)
            if await database_sync_to_async(endpoint_origin.user_of)(payload) is None:
                raise endpoint_origin.Refused("This link was made for a sign-in that has ended.")
        except endpoint_origin.Refused as refused:
            log.info("endpoint %s: ticket refused: %s", key, refused)
            again = endpoint_origin.portal_url(clean)
            await _answer(scope, send, 403, f"{refused} Open it again from the portal: {again}")
            return
        cookie = endpoint_origin.credential_cookie(endpoint_origin.credential_issue(payload), prefix)
        headers = [
            (b"location", clean.encode("latin-1")),
            (b"set-cookie", cookie),
            (b"set-cookie", endpoint_origin.state_cookie("", prefix)),  # spent
            (b"referrer-policy", b"no-referrer"),
        ]
        await _answer(scope, send, 302, "Signed in to this endpoint.", headers)

    async def _relay(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        target: Target,
        extra: list | None = None,
        *,
        retried: bool = False,
    ) -> None:
        import aiohttp
        from yarl import URL

        body_done = asyncio.Event()
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        data: bytes | AsyncIterator[bytes] | None
        if first.get("more_body"):

            async def body() -> AsyncIterator[bytes]:
                # Streamed as it arrives: an upload of any size never sits whole in the portal.
                yield first.get("body", b"")
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise ConnectionResetError("the client went away during the upload")
                    yield message.get("body", b"")
                    if not message.get("more_body"):
                        body_done.set()
                        return

            data = body()
        else:
            data = first.get("body") or None
            body_done.set()

        host = _header(scope, b"host")
        started = False

        async def relay() -> None:
            nonlocal started
            async with client_session().request(
                scope["method"],
                URL(upstream_url(scope, target), encoded=True),
                headers=upstream_headers(scope, target),
                data=data,
                allow_redirects=False,
            ) as response:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": downstream_headers(response.raw_headers, target, host) + (extra or []),
                    }
                )
                started = True
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            await body_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass

        relaying = asyncio.ensure_future(relay())
        watching = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relaying, watching):
                if not task.done():
                    task.cancel()
        if relaying.cancelled() or not relaying.done():
            return  # the client left: the upstream response is dropped with the connection
        error = relaying.exception()
        if error is None:
            return
        if started:
            # Half a response is out: all that can be done is to end it (the client sees a cut body).
            log.info("endpoint %s: upstream failed mid-response: %s", target.prefix, error)
            return
        if isinstance(error, aiohttp.ClientConnectorError | ConnectionRefusedError):
            # Perhaps it ended a moment ago and the permission answer was reused: ask again before saying "starting".
            _forget(self, scope)
            try:
                fresh = await _authorize(self, scope)
            except Refused as refused:
                await self.refused(scope, send, refused)
                return
            if fresh.address != target.address and not retried and not first.get("more_body"):
                # It moved (a new run of an app): the request goes to where it is now, once.
                replayed = False

                async def again() -> dict[str, Any]:
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return first
                    return await receive()

                await self._relay(scope, again, send, fresh, extra, retried=True)
                return
            await _answer(
                scope,
                send,
                502,
                "The endpoint is not answering yet; it may still be starting.",
                [(b"retry-after", b"2")],
            )
        elif isinstance(error, aiohttp.ClientError | asyncio.TimeoutError | ConnectionResetError):
            await _answer(scope, send, 502, f"The endpoint failed: {error}")
        else:
            raise error

    # --- websockets ---

    async def websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import aiohttp
        from yarl import URL

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        kwargs = scope["url_route"]["kwargs"]
        try:
            if "rest" not in kwargs:
                raise Refused(404, "No such endpoint path.")
            host = _header(scope, b"host")
            if not self.fits(host, kwargs):
                raise Refused(404, "This endpoint is served at a host of its own, not here.")
            user, how, _renew = await _identify(self, scope)
            scope = dict(scope, user=user)
            if how == "cookie":
                refusal = endpoint_origin.socket_origin_refusal(host, _header(scope, b"origin"))
                if refusal:
                    raise Refused(403, refusal)
            target = await _authorize(self, scope)
        except Refused as refused:
            # Closing before accepting answers the handshake with 403: a browser learns no more than that.
            code = {401: CLOSE_UNAUTHENTICATED, 403: CLOSE_FORBIDDEN, 503: CLOSE_UNAVAILABLE}.get(
                refused.status, CLOSE_NOT_FOUND
            )
            log.info("endpoint socket refused %s: %s", scope.get("path"), refused.message)
            await send({"type": "websocket.close", "code": code})
            return
        await self.used(target)
        try:
            upstream = await client_session().ws_connect(
                URL(upstream_url(scope, target, websocket=True), encoded=True),
                headers=upstream_headers(scope, target, websocket=True),
                protocols=tuple(scope.get("subprotocols") or ()),
                max_msg_size=0,  # frames pass whatever their size, as they would without the proxy
                autoclose=False,
                autoping=True,
                compress=0,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("endpoint socket %s: upstream refused: %s", target.prefix, exc)
            _forget(self, scope)  # the next attempt asks the permission module again (the job may have ended)
            await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})

        async def from_client() -> int:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    if message.get("text") is not None:
                        await upstream.send_str(message["text"])
                    elif message.get("bytes") is not None:
                        await upstream.send_bytes(message["bytes"])
                    await self.used(target)
                elif message["type"] == "websocket.disconnect":
                    return int(message.get("code") or 1000)

        async def from_upstream() -> int:
            async for frame in upstream:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await send({"type": "websocket.send", "text": frame.data})
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    await send({"type": "websocket.send", "bytes": frame.data})
                elif frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    return 1011
            return upstream.close_code or 1000

        async def rechecked() -> str:
            every = settings.EASYAI_WS_RECHECK_SECONDS
            token_key = _token_key(scope) if how == "token" else ""
            while True:
                await asyncio.sleep(every)
                try:
                    await database_sync_to_async(still_allowed)(self, getattr(user, "pk", None), token_key, kwargs)
                except Refused as refused:
                    return refused.message
                except Exception:  # the database is briefly away: keep the socket, ask again next time
                    log.warning("rechecking endpoint socket %s failed", target.prefix, exc_info=True)

        client_side = asyncio.ensure_future(from_client())
        upstream_side = asyncio.ensure_future(from_upstream())
        recheck = asyncio.ensure_future(rechecked())
        try:
            done, _pending = await asyncio.wait(
                {client_side, upstream_side, recheck}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (client_side, upstream_side, recheck):
                if not task.done():
                    task.cancel()
        if recheck in done and not recheck.cancelled() and recheck.exception() is None:
            log.info("endpoint socket %s closed: %s", target.prefix, recheck.result())
            _forget(self, scope)
            await upstream.close()
            try:
                await send({"type": "websocket.close", "code": CLOSE_REVOKED})
            except Exception:  # the client is already gone
                pass
            return
        if client_side in done and not client_side.cancelled() and client_side.exception() is None:
            code = client_side.result()
            await upstream.close(code=code if code in WS_CLOSE_SENDABLE or code in (1000, 1001) else 1000)
            return
        code = 1011
        if upstream_side in done and not upstream_side.cancelled() and upstream_side.exception() is None:
            code = upstream_side.result()
        await upstream.close()
        try:
            sendable = code in WS_CLOSE_SENDABLE or code in (1000, 1001, 1008, 1011)
            await send({"type": "websocket.close", "code": code if sendable else 1000})
        except Exception:  # the client is already gone
            pass
