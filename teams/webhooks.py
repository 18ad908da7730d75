"""Where a team's webhook may point, and sending to it without being turned against the platform's network.

A webhook URL is http or https to a public address: not loopback, not the cloud metadata service
(169.254.169.254), not a private, link-local, shared or reserved network, unless a platform admin
allows that network (EASYAI_WEBHOOK_ALLOWED_NETWORKS). It is checked when saved and again when sent,
since a name may resolve elsewhere later (DNS rebinding): at send time the name is resolved once,
every address it gives is checked, and the connection goes to that checked address, not to a second
look-up. Redirects are never followed (a public endpoint could redirect to a private one).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
FIELD = "webhook_url"


class WebhookRefusedError(ValueError):
    """The URL, or where it resolves, is not one the platform sends to."""


@lru_cache(maxsize=8)
def _allowed_networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def address_allowed(address: IPAddress) -> bool:
    """A public (globally routed, unicast) address, or one in a network a platform admin allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in _allowed_networks(tuple(settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS))):
        return True
    return address.is_global and not address.is_multicast


def _parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL with a host; WebhookRefusedError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefusedError(_("This is not a valid URL.")) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise WebhookRefusedError(_("Webhooks are sent over http:// or https:// only."))
    if not parts.hostname:
        raise WebhookRefusedError(_("The URL names no host."))
    if parts.username is not None or parts.password is not None:
        raise WebhookRefusedError(_("Put no user name or password in the URL (they would be shown to every team member)."))
    return scheme, parts.hostname, port or SCHEMES[scheme]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host name resolves to (an address literal resolves to itself)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefusedError(_("The host %(host)s cannot be resolved: %(error)s") % {"host": host, "error": exc}) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _check_addresses(host: str, addresses: list[IPAddress]) -> None:
    refused = [str(address) for address in addresses if not address_allowed(address)]
    if refused:
        raise WebhookRefusedError(
            _(
                "%(host)s is %(addresses)s, a loopback, private, link-local or reserved address; webhooks go to "
                "public addresses only (a platform admin may allow a network)."
            )
            % {"host": host, "addresses": ", ".join(refused)}
        )


def check_url(url: str) -> None:
    """Refuse (ValidationError on webhook_url) a URL the platform would not send to.

    A name that does not resolve now is accepted: it is resolved and checked again at every send.
    """
    if not url:
        return
    try:
        _scheme, host, port = _parts(url)
        literal = _literal(host)
        if literal is not None:
            _check_addresses(host, [literal])
            return
        try:
            addresses = resolve(host, port)
        except WebhookRefusedError:
            return
        _check_addresses(host, addresses)
    except WebhookRefusedError as exc:
        raise ValidationError({FIELD: [str(exc)]}) from None


def validate_webhook_url(url: str) -> None:
    """A model field validator: check_url's errors, without the field name (the field adds it)."""
    try:
        check_url(url)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict[FIELD]) from None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address; the certificate is verified against the URL's host name (SNI too)."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.pinned_address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post_json(url: str, body: bytes, *, timeout: float = 5.0) -> int:
    """POST the body to the URL after checking where it goes; returns the HTTP status (a redirect is not followed).

    Raises WebhookRefusedError when the URL or any address it resolves to is not allowed, OSError when the
    endpoint cannot be reached.
    """
    scheme, host, port = _parts(url)
    addresses = resolve(host, port)
    if not addresses:
        raise WebhookRefusedError(_("The host %(host)s resolves to no address.") % {"host": host})
    _check_addresses(host, addresses)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, addresses[0], timeout)
    try:
        connection.request(
            "POST", target, body=body, headers={"Content-Type": "application/json", "User-Agent": "EasyAI"}
        )
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()
