"""`manage.py serve` listens for the endpoint origin too when it is this machine's (the embedded default)."""

from __future__ import annotations

import pytest

from easyai_site.management.commands.serve import local_endpoints_port


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://localhost:8001", 8001),
        ("http://127.0.0.1:9001", 9001),
        ("http://[::1]:8001", 8001),
        ("http://*.localhost:8001", 8001),
        ("http://endpoints.localhost", 80),
        ("https://endpoints.example.net", None),  # a proxy in front sends that host to the portal's port
        ("https://*.endpoints.example.net:8443", None),
    ],
)
def test_serve_listens_on_the_endpoint_origins_port_when_it_is_this_machines(url: str, port: int | None):
    assert local_endpoints_port(url) == port
