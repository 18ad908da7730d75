"""Endpoints on an origin apart from the portal's: where it is, and the one credential that crosses to it.

Whatever a task serves (notebooks, TensorBoard, any named port) runs its scripts in the browser. Served from
the portal's origin, such a page could read the portal's CSRF cookie and act as whoever opened it; so the
endpoint proxy answers only on ``EASYAI_ENDPOINTS_URL`` (``settings.py``): one host for all endpoints (the
embedded default, ``http://localhost:8001`` beside a portal on ``http://127.0.0.1:8000``: another host name,
since browsers share cookies between ports of one host) or, best, one host per endpoint under a wildcard
(``https://*.endpoints.example.com``), where endpoints cannot read each other either.

The endpoint origin never sees the portal's session. A browser without its credential there is sent to the
portal with a fresh **state** (a random value the endpoint origin also keeps in a short-lived cookie of its
own); the portal signs it in if need be, asks the permission module, and sends it back with a **ticket**:
signed, for that one endpoint and that state, valid ``TICKET_MAX_AGE_S`` and once. The endpoint origin
exchanges it, only in the browser holding that state, for a **credential** cookie (HttpOnly, SameSite=Lax,
scoped to the endpoint's path and host, valid ``CREDENTIAL_MAX_AGE_S``, renewed while used) and redirects to
the clean URL. The state binds the ticket to the browser that asked for it: a ticket of someone else's, put
in a link, signs nobody in as them (a login CSRF). The proxy then authorises each request by that cookie,
asking the permission module again (a revoked share bites within seconds). Clients with an API token send
it as ``Authorization: Token <key>`` to the endpoint origin directly.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.core import signing

TICKET_PARAM = "_easyai_ticket"  # the query parameter the portal's redirect carries the ticket in
STATE_PARAM = "_easyai_state"  # ...and the endpoint origin's redirect to the portal the state
COOKIE_NAME = "easyai_endpoint"
STATE_COOKIE_NAME = "easyai_state"
STATE_MAX_AGE_S = 300
_STATE = re.compile(r"[A-Za-z0-9_-]{20,64}")
TICKET_MAX_AGE_S = 60
CREDENTIAL_MAX_AGE_S = 3600
CREDENTIAL_RENEW_AFTER_S = 600  # a credential older than this is replaced on the next request that uses it
_TICKET_SALT = "easyai.endpoints.ticket"  # different salts: a cookie is never a ticket, nor a ticket a cookie
_CREDENTIAL_SALT = "easyai.endpoints.credential"
_USED_TICKET_KEY = "easyai:endpoint-ticket:{}"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


# --- where the endpoint origin is ---------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # the host name; for a wildcard, the domain the endpoints' hosts are under
    port: int | None
    wildcard: bool

    @property
    def source(self) -> str:
        """As a CSP source: scheme://host[:port], with *. for a wildcard."""
        return f"{self.scheme}://{'*.' if self.wildcard else ''}{_netloc(self.host, self.port)}"


def _netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


@functools.lru_cache(maxsize=8)
def _parse(url: str) -> Origin:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    wildcard = host.startswith("*.")
    return Origin(parts.scheme, host[2:] if wildcard else host, parts.port, wildcard)


def origin() -> Origin:
    return _parse(settings.EASYAI_ENDPOINTS_URL)


def _hostname(host_header: str) -> str:
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


def serves(host_header: str) -> bool:
    """Whether a request with this Host is for the endpoint origin. By name, whatever the port: browsers
    share cookies between the ports of one host, so the portal is never served under the endpoints' name."""
    hostname, where = _hostname(host_header), origin()
    if where.wildcard:
        return hostname.endswith("." + where.host)
    return bool(hostname) and hostname == where.host


def cookie_domain_problem() -> str:
    """Why the portal's cookie settings would hand its cookies to the endpoint origin ("" when they do not)."""
    where = origin()
    for setting in ("SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN", "LANGUAGE_COOKIE_DOMAIN"):
        domain = (getattr(settings, setting) or "").lower().lstrip(".")  # Django defines each (None)
        if not domain:
            continue
        if (
            where.host == domain
            or where.host.endswith("." + domain)
            or (where.wildcard and domain.endswith("." + where.host))
        ):
            return (
                f"{setting}={domain!r} covers the endpoint origin ({settings.EASYAI_ENDPOINTS_URL}): the portal's "
                "cookies would reach pages that tasks serve"
            )
    return ""


def endpoint_key(job_id: str, task: str, name: str) -> str:
    return f"{job_id}/{task}/{name}"


def host_label(job_id: str, task: str, name: str) -> str:
    """The DNS label of an endpoint's own host under a wildcard (at most 63 characters)."""
    label = f"{job_id}--{task}--{name}"
    if len(label) > 63:
        label = f"{job_id}--{hashlib.sha256(endpoint_key(job_id, task, name).encode()).hexdigest()[:20]}"
    return label


def endpoint_netloc(job_id: str, task: str, name: str) -> str:
    where = origin()
    host = f"{host_label(job_id, task, name)}.{where.host}" if where.wildcard else where.host
    return _netloc(host, where.port)


def host_fits(host_header: str, job_id: str, task: str, name: str) -> bool:
    """Under a wildcard each endpoint answers on its own host only (its credential is scoped to that host)."""
    where = origin()
    return not where.wildcard or _hostname(host_header) == f"{host_label(job_id, task, name)}.{where.host}"


def endpoint_url(job_id: str, task: str, name: str, path_and_query: str) -> str:
    """The absolute URL of a path (and query) under an endpoint, on the endpoint origin."""
    return f"{origin().scheme}://{endpoint_netloc(job_id, task, name)}{path_and_query}"


def portal_url(path_and_query: str) -> str:
    return settings.SITE_URL.rstrip("/") + path_and_query


def without_ticket(query: str) -> str:
    """A query string less the ticket and state parameters (the rest kept as it was written)."""
    if TICKET_PARAM not in query and STATE_PARAM not in query:
        return query
    return "&".join(part for part in query.split("&") if part.split("=", 1)[0] not in (TICKET_PARAM, STATE_PARAM))


def _param(query: str, name: str) -> str:
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return ""


def ticket_in(query: str) -> str:
    return _param(query, TICKET_PARAM) if TICKET_PARAM in query else ""


def state_in(query: str) -> str:
    """The state the endpoint origin sent the browser to the portal with ("" when none, or not one of ours)."""
    value = _param(query, STATE_PARAM) if STATE_PARAM in query else ""
    return value if _STATE.fullmatch(value) else ""


def with_param(url: str, name: str, value: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({name: value})


def with_ticket(url: str, ticket: str) -> str:
    return with_param(url, TICKET_PARAM, ticket)


# --- tickets and credentials ------------------------------------------------------------------------


class Refused(Exception):  # noqa: N818 - reads as what happened
    pass


def _auth_hash(user: Any) -> str:
    """Changes with the user's password: a credential made before a password change stops working."""
    return user.get_session_auth_hash()[:20]


def state_new() -> str:
    return secrets.token_urlsafe(24)


def state_cookie(value: str, prefix: str) -> bytes:
    """The Set-Cookie value keeping the state in the browser that was sent to the portal ("" clears it)."""
    parts = [f"{STATE_COOKIE_NAME}={value}", f"Path={prefix}", f"Max-Age={STATE_MAX_AGE_S if value else 0}",
             "HttpOnly", "SameSite=Lax"]  # fmt: skip
    if origin().scheme == "https":
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def ticket_issue(user: Any, job_id: str, task: str, name: str, state: str) -> str:
    """A ticket for this user to this one endpoint, for the browser holding this state (the caller has asked
    the permission module)."""
    return ticket_for_key(user, endpoint_key(job_id, task, name), state)


def ticket_for_key(user: Any, key: str, state: str) -> str:
    """A ticket for whatever the endpoint origin serves under ``key`` (an endpoint's, or another app's path
    such as an inference service's ``serving/{team}/{name}``)."""
    payload = {
        "u": user.pk,
        "e": key,
        "h": _auth_hash(user),
        "s": state,
        "n": secrets.token_hex(8),
    }
    return signing.dumps(payload, salt=_TICKET_SALT)


def ticket_redeem(value: str, key: str, states: list[str]) -> dict[str, Any]:
    """The ticket's payload if it is genuine, recent, for this endpoint, made for one of the states this
    browser holds, and not used before; Refused otherwise."""
    from django.core.cache import cache

    try:
        payload = signing.loads(value, salt=_TICKET_SALT, max_age=TICKET_MAX_AGE_S)
    except signing.SignatureExpired:
        raise Refused("This link has expired.") from None
    except signing.BadSignature:
        raise Refused("This link is not valid.") from None
    if not isinstance(payload, dict) or payload.get("e") != key:
        raise Refused("This link is for another endpoint.")
    if not any(secrets.compare_digest(str(payload.get("s", "")), state) for state in states if state):
        raise Refused("This link was made for another browser.")
    if not cache.add(_USED_TICKET_KEY.format(payload.get("n")), 1, timeout=TICKET_MAX_AGE_S * 2):
        raise Refused("This link has been used already.")
    return payload


def credential_issue(payload: dict[str, Any]) -> str:
    return signing.dumps({"u": payload["u"], "e": payload["e"], "h": payload["h"], "t": int(time.time())},
                         salt=_CREDENTIAL_SALT)  # fmt: skip


def credential_read(value: str, key: str) -> dict[str, Any] | None:
    """The credential's payload if it is genuine, unexpired and for this endpoint; None otherwise."""
    try:
        payload = signing.loads(value, salt=_CREDENTIAL_SALT, max_age=CREDENTIAL_MAX_AGE_S)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("e") != key:
        return None
    return payload


def user_of(payload: dict[str, Any]) -> Any:
    """The active user a ticket or credential was made for, while their password is the same; None otherwise."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=payload.get("u"), is_active=True).first()
    if user is None or not secrets.compare_digest(_auth_hash(user), str(payload.get("h", ""))):
        return None
    return user


def credential_cookie(value: str, prefix: str) -> bytes:
    """The Set-Cookie value carrying a credential: to this endpoint's path (and, under a wildcard, host) only."""
    parts = [f"{COOKIE_NAME}={value}", f"Path={prefix}", f"Max-Age={CREDENTIAL_MAX_AGE_S}", "HttpOnly", "SameSite=Lax"]
    if origin().scheme == "https":
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def cookies_named(cookie_header: str, wanted: str) -> list[str]:
    """Every value of one cookie the browser sent (one per path that matched)."""
    values = []
    for part in cookie_header.split(";"):
        name, _eq, value = part.strip().partition("=")
        if name == wanted and value:
            values.append(value)
    return values


def credentials_in(cookie_header: str) -> list[str]:
    return cookies_named(cookie_header, COOKIE_NAME)


def states_in(cookie_header: str) -> list[str]:
    return cookies_named(cookie_header, STATE_COOKIE_NAME)


# --- requests that ride on the cookie -------------------------------------------------------------------


def own_origin(host_header: str) -> str:
    return f"{origin().scheme}://{host_header}".lower()


def cross_site_refusal(method: str, host_header: str, fetch_site: str, origin_header: str) -> str:
    """Why a request that the credential cookie authenticates must not pass ("" when it may).

    A state-changing request must come from the endpoint's own pages: Sec-Fetch-Site says so where the
    browser sends it, else Origin. A request with neither comes from no browser, which carries no cookie of
    a victim's.
    """
    if method.upper() in SAFE_METHODS:
        return ""
    if fetch_site:
        if fetch_site in ("same-origin", "none"):
            return ""
        return f"A {method} from another site ({fetch_site}) is refused: it would ride on your endpoint cookie."
    if origin_header and origin_header.lower() != own_origin(host_header):
        return f"A {method} from {origin_header} is refused: it would ride on your endpoint cookie."
    return ""


def socket_origin_refusal(host_header: str, origin_header: str) -> str:
    """Why a websocket that the credential cookie authenticates must not open ("" when it may)."""
    if origin_header and origin_header.lower() != own_origin(host_header):
        return f"A socket from {origin_header} is refused: it would ride on your endpoint cookie."
    return ""
