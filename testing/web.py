"""Plain HTTP to a live test server, as a client outside the portal would send it (fetch, token_for, wait_answering)."""

from __future__ import annotations

import http.client

from conftest import token_key_for
from endpoints.origin import origin
from testing.wait import wait_until


def token_for(user) -> str:
    """The user's API token key (made on first use)."""
    return token_key_for(user)


def fetch(
    port: int, path: str, *, method: str = "GET", user=None, body: bytes | None = None, **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One plain HTTP request to 127.0.0.1:port (no redirects followed): status, headers, body."""
    if user is not None:
        headers["Authorization"] = f"Token {token_for(user)}"
    if path.startswith(("/endpoints/", "/serving/")) and not any(name.lower() == "host" for name in headers):
        # Endpoints and inference services are served on their own origin, by host name (endpoints/origin.py).
        headers["Host"] = f"{origin().host}:{port}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def wait_answering(port: int, path: str, user, timeout: float = 60.0) -> bytes:
    """Poll a path until it answers 200 (a server may take a moment after its endpoint is known)."""

    def answered() -> bytes | None:
        status, _headers, body = fetch(port, path, user=user)
        return body if status == 200 else None

    return wait_until(answered, timeout, f"{path} to answer", every=0.2)
