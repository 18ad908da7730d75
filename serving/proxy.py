"""The serving proxy: ``/serving/{team}/{service}/…`` on the endpoint origin, relayed to a serving revision.

Every backend answers at this one URL, with the model server's own protocols under it: KServe V1
(``POST …/v1/models/{service}:predict``) and the Open Inference Protocol V2 (``POST …/v2/models/{service}/infer``,
``GET …/v2/health/ready``). Who may call (``serving/traffic.py``): whoever may view the service, with an API
token in the Authorization header or, in a browser, with the service's credential cookie (the endpoint
origin's sign-in: an anonymous page load goes to the portal, which sends it back with a ticket for this
service, ``endpoints/origin.py``); anyone when a team admin made it public. Each call goes to one revision,
drawn by weight (the canary's share), so a canary at 20 % gets a fifth of the calls; the model server's answer
(a 400 for a malformed body included) passes through as it is. The route is asked again within
``ROUTE_FOR_S``, so a promoted canary or a revoked membership bites within seconds. Calls and their latency
are counted in memory and added to the service's row every ``FLUSH_EVERY_S``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote

from channels.db import database_sync_to_async
from django.conf import settings

from endpoints import origin as endpoint_origin
from endpoints.proxy import client_session
from serving import services, traffic

log = logging.getLogger(__name__)

SERVING_PATTERN = r"^serving/(?P<team>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/(?P<service>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?P<rest>/.*)?$"
ROUTE_FOR_S = 2.0
FLUSH_EVERY_S = 2.0
FORWARDED = frozenset({b"content-type", b"accept", b"content-encoding", b"accept-encoding", b"ce-id", b"ce-type"})
RETURNED = frozenset({b"content-type", b"content-encoding", b"content-length"})

_routes: dict[tuple[Any, str, str], tuple[float, traffic.Route | traffic.Refused]] = {}
_counts: dict[int, list[float]] = {}  # service pk -> [requests, errors, latency ms]
_flushing: dict[str, Any] = {"at": 0.0}


def forget_routes() -> None:
    _routes.clear()


def service_key(team: str, name: str) -> str:
    """What a ticket and a credential cookie for this service name (endpoints/origin.py)."""
    return f"serving/{team}/{name}"


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _raw_path(scope: dict[str, Any]) -> str:
    return (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")


async def _cookie_user(scope: dict[str, Any], key: str) -> Any:
    """The user of this service's credential cookie, or None."""
    for value in endpoint_origin.credentials_in(_header(scope, b"cookie")):
        payload = endpoint_origin.credential_read(value, key)
        if payload is not None:
            user = await database_sync_to_async(endpoint_origin.user_of)(payload)
            if user is not None:
                return user
    return None


async def _redirect(send: Any, location: str, cookies: list[bytes], message: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"cache-control", b"no-store")]
    headers += [(b"set-cookie", cookie) for cookie in cookies]
    await _answer(send, 302, message, headers)


async def _exchange(scope: dict[str, Any], send: Any, key: str, ticket: str) -> None:
    """The portal's ticket becomes this service's credential cookie; then the clean URL."""
    prefix = f"/{key}/"
    query = endpoint_origin.without_ticket(scope.get("query_string", b"").decode("latin-1"))
    clean = _raw_path(scope) + (f"?{query}" if query else "")
    try:
        states = endpoint_origin.states_in(_header(scope, b"cookie"))
        payload = await database_sync_to_async(endpoint_origin.ticket_redeem)(ticket, key, states)
        if await database_sync_to_async(endpoint_origin.user_of)(payload) is None:
            raise endpoint_origin.Refused("This link was made for a sign-in that has ended.")
    except endpoint_origin.Refused as refused:
        await _answer(send, 403, f"{refused} Open it again from the portal: {endpoint_origin.portal_url(clean)}")
        return
    cookie = endpoint_origin.credential_cookie(endpoint_origin.credential_issue(payload), prefix)
    await _redirect(send, clean, [cookie, endpoint_origin.state_cookie("", prefix)], "Signed in to this service.")


async def _to_portal(scope: dict[str, Any], send: Any, key: str) -> None:
    """A browser without a credential: to the portal, which signs it in and sends it back with a ticket."""
    state = endpoint_origin.state_new()
    query = scope.get("query_string", b"").decode("latin-1")
    portal = endpoint_origin.with_param(
        endpoint_origin.portal_url(_raw_path(scope) + (f"?{query}" if query else "")), endpoint_origin.STATE_PARAM, state
    )
    await _redirect(send, portal, [endpoint_origin.state_cookie(state, f"/{key}/")], "Sign in through the portal.")


async def _route(scope: dict[str, Any]) -> traffic.Route:
    kwargs = scope["url_route"]["kwargs"]
    user = scope.get("user")
    key = (getattr(user, "pk", None), kwargs["team"], kwargs["service"])
    now = time.monotonic()
    hit = _routes.get(key)
    if hit is not None and hit[0] > now:
        found = hit[1]
    else:
        try:
            found = await database_sync_to_async(traffic.route_for)(user, kwargs["team"], kwargs["service"])
        except traffic.Refused as refused:
            found = refused
        if len(_routes) > 10_000:
            _routes.clear()
        # A 503 is asked again soon: a revision that starts answering is used at once.
        _routes[key] = (now + (0.25 if isinstance(found, traffic.Refused) and found.status == 503 else ROUTE_FOR_S), found)
    if isinstance(found, traffic.Refused):
        raise found
    return found


async def _answer(send: Any, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):  # noqa: N818 - reads as what happened
    pass


async def _body(receive: Any) -> bytes | None:
    """The whole request body (a predict call's), None when the client left; BodyTooLarge past the limit."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > settings.EASYAI_SERVING_MAX_BODY_BYTES:
            while message.get("more_body"):  # drained, so that the answer can be read
                message = await receive()
                if message["type"] != "http.request":
                    return None
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _count(service_pk: int, failed: bool, elapsed_ms: float) -> None:
    row = _counts.setdefault(service_pk, [0, 0, 0.0])
    row[0] += 1
    row[1] += 1 if failed else 0
    row[2] += elapsed_ms


async def _flush(force: bool = False) -> None:
    now = time.monotonic()
    if not _counts or (not force and now - _flushing["at"] < FLUSH_EVERY_S):
        return
    _flushing["at"] = now
    pending = dict(_counts)
    _counts.clear()
    for pk, (requests, errors, latency) in pending.items():
        try:
            await database_sync_to_async(services.service_stats)(pk, int(requests), int(errors), latency)
        except Exception:  # the counts of one flush are lost rather than the request failed
            log.warning("could not record the calls of service %s", pk, exc_info=True)


class ServingProxy:
    """ASGI app for ``http`` scopes of SERVING_PATTERN."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 4404})
            return
        started = time.perf_counter()
        try:
            body = await _body(receive)
        except BodyTooLarge:
            limit = settings.EASYAI_SERVING_MAX_BODY_BYTES
            await _answer(send, 413, f"A call's body may be at most {limit} bytes (EASYAI_SERVING_MAX_BODY_BYTES).")
            return
        if body is None:
            return
        kwargs = scope["url_route"]["kwargs"]
        rest = kwargs.get("rest") or "/"
        key = service_key(kwargs["team"], kwargs["service"])
        query = scope.get("query_string", b"").decode("latin-1")
        if endpoint_origin.TICKET_PARAM in query and scope["method"] == "GET":
            await _exchange(scope, send, key, endpoint_origin.ticket_in(query))
            return
        user = scope.get("user")
        if (user is None or not user.is_authenticated) and endpoint_origin.COOKIE_NAME in _header(scope, b"cookie"):
            cookie_user = await _cookie_user(scope, key)
            if cookie_user is not None:
                refusal = endpoint_origin.cross_site_refusal(
                    scope["method"], _header(scope, b"host"), _header(scope, b"sec-fetch-site"), _header(scope, b"origin")
                )
                if refusal:
                    await _answer(send, 403, refusal)
                    return
                scope = dict(scope, user=cookie_user)
        try:
            route = await _route(scope)
        except traffic.Refused as refused:
            if refused.status == 401 and scope["method"] == "GET" and "text/html" in _header(scope, b"accept"):
                await _to_portal(scope, send, key)
                return
            extra = [(b"www-authenticate", b"Token")] if refused.status == 401 else []
            if refused.status == 503:
                extra.append((b"retry-after", b"2"))
            await _answer(send, refused.status, refused.message, extra)
            return
        upstream = route.choose()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", []) if k in FORWARDED}
        if upstream.host:
            headers["Host"] = upstream.host
        query = scope.get("query_string", b"").decode("latin-1")
        url = upstream.base + rest + (f"?{query}" if query else "")
        import aiohttp
        from yarl import URL

        try:
            async with client_session().request(
                scope["method"], URL(url, encoded=True), headers=headers, data=body or None, allow_redirects=False
            ) as response:
                content = await response.read()
                out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() in RETURNED]
                out.append((b"x-easyai-revision", str(upstream.revision).encode()))
                await send({"type": "http.response.start", "status": response.status, "headers": out})
                await send({"type": "http.response.body", "body": content})
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            forget_routes()
            await _answer(send, 502, f"The model server did not answer: {exc}", [(b"retry-after", b"1")])
            status = 502
        _count(route.service_pk, status >= 500, (time.perf_counter() - started) * 1000)
        await _flush()
