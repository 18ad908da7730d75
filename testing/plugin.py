"""The fixtures every app's tests share, loaded with ``-p testing.plugin`` (pyproject.toml's addopts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from testing.asgi import AsgiServer, launch_args
from testing.fakekube import FakeKube, running_fake
from testing.hooks import webhook_server  # noqa: F401 - the fixture: a webhook receiver on loopback
from testing.isolation import SANDBOX_REFUSED, portal_layout  # noqa: F401 - the fixture: the embedded defaults' var/ with canaries
from testing.local import local_cluster, stop_all  # noqa: F401 - the fixtures: a local cluster for real jobs
from testing.pipelines import drive  # noqa: F401 - the fixture: pipeline runs driven on the fake backend

# --- the folder of the tests' SQLite database ------------------------------------------------------------


def pytest_sessionstart(session) -> None:
    """The settings write nothing (easyai_site/prepare.py is the entry points'): make var/, where a SQLite test
    database is kept (its TEST NAME), and the static root, as manage.py would. The tests sign with a key of
    their own."""
    from django.conf import settings

    for folder in (settings.VAR_DIR, settings.STATIC_ROOT):  # WhiteNoise looks for its folder as it starts
        folder.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Django drops the SQLite test database; its write-ahead log and index files go with it here."""
    from django.conf import settings

    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and name:
        for suffix in ("-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


# --- people are cheap to make -----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """A permission test makes several people with passwords; the real hasher would spend seconds on them."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


# --- a host that cannot sandbox tasks -------------------------------------------------------------------


def pytest_report_header(config) -> str:
    refused = SANDBOX_REFUSED
    if not refused:
        return "local tasks: sandboxed (bubblewrap)"
    return f"local tasks: UNISOLATED, {refused}; the isolation tests skip (EASYAI_REQUIRE_SANDBOX=1 makes this fail)"


@pytest.fixture(scope="session", autouse=True)
def _local_clusters_where_the_host_cannot_sandbox() -> Iterator[None]:
    """On a host without bubblewrap, the tests' local clusters let everyone run (allow_unisolated), as an
    operator of such a host would; the isolation tests skip, saying why. CI sets EASYAI_REQUIRE_SANDBOX=1."""
    refused = SANDBOX_REFUSED
    if not refused:
        yield
        return
    if os.environ.get("EASYAI_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"EASYAI_REQUIRE_SANDBOX=1 but this host cannot sandbox tasks: {refused}")
    from clusters.backends.local import resources

    before = dict(resources.ISOLATION_DEFAULTS)
    resources.ISOLATION_DEFAULTS["allow_unisolated"] = True
    try:
        yield
    finally:
        resources.ISOLATION_DEFAULTS.update(before)


# --- the debug toolbox's tests on a host without its packages ----------------------------------------------

# They skip, saying what is missing (busybox-static, dropbear-bin, libnss-wrapper, the OpenSSH client, gcc,
# code-server); CI installs everything and sets EASYAI_REQUIRE_TOOLBOX=1, which makes any skip there a failure.
TOOLBOX_TESTS = frozenset({
    "jobs/tests/test_ssh.py", "cli/tests/test_ssh_cli.py", "clusters/tests/test_local_toolbox.py",
    "clusters/tests/test_k8s_toolbox.py", "clusters/tests/test_k8s_tools_image.py", "notebooks/tests/test_vscode.py",
})  # fmt: skip


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("EASYAI_REQUIRE_TOOLBOX") == "1"
        and item.nodeid.split("::", 1)[0] in TOOLBOX_TESTS
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"EASYAI_REQUIRE_TOOLBOX=1 but this test skipped: {reason}"


@pytest.fixture(autouse=True)
def _site_language_after_each_test() -> Iterator[None]:
    """A request in another language (Accept-Language: zh-hans) leaves that language active in the test's
    thread; the next test starts in the site's own again."""
    yield
    from django.utils import translation

    translation.deactivate()


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


# --- the endpoint origin: the live server under a second name -------------------------------------------


@pytest.fixture
def origins(asgi_server, settings) -> SimpleNamespace:
    """The test server as the portal (127.0.0.1) and as the endpoint origin (localhost), on one port."""
    port = asgi_server.port
    settings.EASYAI_ENDPOINTS_URL = f"http://localhost:{port}"
    settings.SITE_URL = f"http://127.0.0.1:{port}"
    return SimpleNamespace(port=port, portal=f"127.0.0.1:{port}", endpoints=f"localhost:{port}")


@pytest.fixture
def wildcard(asgi_server, settings) -> SimpleNamespace:
    """The endpoint origin as a host per endpoint under *.localhost (browsers resolve those to this machine)."""
    port = asgi_server.port
    settings.EASYAI_ENDPOINTS_URL = f"http://*.localhost:{port}"
    settings.SITE_URL = f"http://127.0.0.1:{port}"
    return SimpleNamespace(port=port, portal=f"127.0.0.1:{port}", endpoints=None)
