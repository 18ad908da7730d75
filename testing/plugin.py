"""The fixtures every app's tests share, loaded with ``-p testing.plugin`` (pyproject.toml's addopts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.asgi import AsgiServer, launch_args
from testing.fakekube import FakeKube, running_fake


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    """A started fake Kubernetes API server with the team namespace "easyai-vision"."""
    yield from running_fake()


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:
    """The fake Kubernetes API server, under the shorter name the jobs and notebooks tests use."""
    return fake_kube


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[AsgiServer]:
    """The project's ASGI application (pages, API, static files, websockets) served on a free port."""
    server = AsgiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch arguments with Debian's chromium."""
    return launch_args(browser_type_launch_args)
