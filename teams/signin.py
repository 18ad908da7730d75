"""Sign-in throttling: the real client address, and attempts counted per address and per user name.

Every sign-in path asks here before it checks a password: the API's token exchange
(POST /api/v1/auth/token/, answered 429 with Retry-After), /accounts/login/ and /admin/login/ (the form
says when to try again). Counters live in the default cache (Redis in production), in fixed windows.

The client address is the peer's (REMOTE_ADDR). X-Forwarded-For is believed only when the peer is one
of EASYAI_TRUSTED_PROXIES, and then only as far back as the proxies go: the right-most address that is
not a trusted proxy is the client, since a client can write anything to the left of it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' -> (10, 60)."""
    count, _slash, period = rate.partition("/")
    return int(count), PERIODS[period]


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The address of the client on the other end, proxies configured in EASYAI_TRUSTED_PROXIES aside."""
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    if peer is None:
        return request.META.get("REMOTE_ADDR", "") or "unknown"
    networks = _networks(tuple(settings.EASYAI_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return str(peer)
    client = peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            break  # garbage from a client: the last trusted hop is all we know
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def _hit(key: str, limit: int, period: int, now: float) -> int | None:
    """Count one attempt in the current window; the seconds to wait when the limit is already reached."""
    window = int(now // period)
    cache_key = f"easyai:signin:{key}:{window}"
    cache.add(cache_key, 0, timeout=period + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=period + 1)
        count = 1
    if count > limit:
        return max(1, math.ceil((window + 1) * period - now))
    return None


def attempt(request: HttpRequest, username: str | None) -> int | None:
    """Count a sign-in attempt; None when it may go ahead, else the seconds until the next one may.

    Counted per client address and, separately, per user name (case-insensitive, so rotating
    addresses does not help against one account, nor rotating names against the platform).
    """
    limit, period = parse_rate(settings.EASYAI_SIGNIN_THROTTLE)
    now = time.time()
    waits = [_hit(f"address:{client_address(request)}", limit, period, now)]
    if username:
        # Hashed: a user name may hold anything, and cache keys must not (memcached refuses spaces).
        name = hashlib.sha256(username.strip().casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
        waits.append(_hit(f"user:{name}", limit, period, now))
    refused = [wait for wait in waits if wait is not None]
    return max(refused) if refused else None
