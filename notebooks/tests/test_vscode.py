"""A real VS Code (code-server, as notebooks/vscode/install.sh installs it) on the local backend: reached through
the endpoint proxy, and worked with in a real headless browser as a user would.

Skipped where code-server is not installed (``sh notebooks/vscode/install.sh``); CI installs it, so there they run.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from clusters.backends.contract import storage
from notebooks import services, specs
from notebooks.models import Notebook
from notebooks.tests.conftest import wait_running, wait_until
from testing.asgi import PORTAL_COOKIES, signed_in
from testing.web import fetch

pytestmark = pytest.mark.slow


@pytest.fixture
def code_server() -> str:
    found = specs.code_server()
    if found is None:
        pytest.skip("code-server is not installed: sh notebooks/vscode/install.sh (make setup does where npm is)")
    return found


def _workspace(owner) -> Path:
    return storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username)


def _vscode(owner, team, local_cluster, name: str = "code") -> Notebook:
    notebook = services.notebook_create(user=owner, team=team, name=name, kind="vscode", cpu="1", memory="2Gi")
    return wait_running(notebook, local_cluster, timeout=120)


def test_a_local_vscode_notebook_runs_the_installed_code_server_behind_the_proxy_for_its_owner_only(
    code_server, asgi_server, local_cluster, stop_all, people, team
):
    owner = people["owner"]
    notebook = _vscode(owner, team, local_cluster)
    job = notebook.job
    assert job.spec["ports"] == {"vscode": specs.VSCODE_PORT}
    assert job.spec["command"][-1].startswith(f"exec {code_server} "), job.spec["command"]
    address = job.tasks.get().endpoints["vscode"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address) and not address.endswith(f":{specs.VSCODE_PORT}")

    port = asgi_server.port
    base = f"/endpoints/{job.public_id}/notebook-0/vscode/"
    # code-server serves at "/": the proxy strips the endpoint's path, and its redirect to the opened folder
    # comes back under that path.
    status, headers, _body = fetch(port, base, user=owner, Accept="text/html")
    assert status == 302, status
    assert headers["Location"].startswith(("./?folder=", f"{base}?folder=")), headers["Location"]
    status, _headers, body = fetch(port, f"{base}?folder={_workspace(owner)}", user=owner, Accept="text/html")
    assert status == 200 and b"vscode-workbench-web-configuration" in body
    status, _headers, body = fetch(port, base + "healthz", user=owner)
    assert status == 200 and b'"status"' in body

    # Straight to the server, as another task on this host's loopback could: its login page, never the workbench,
    # whatever session cookie is made up; the portal's proxy sends the one only the portal can make.
    host, _, server_port = address.partition(":")
    connection = http.client.HTTPConnection(host, int(server_port), timeout=10)
    for cookie in ("", "code-server-session=" + "0" * 64):
        connection.request("GET", f"/?folder={_workspace(owner)}", headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 302 and "login" in response.getheader("Location", ""), (response.status, body[:200])
        assert b"vscode-workbench-web-configuration" not in body
    connection.close()
    status, _headers, body = fetch(
        port, f"{base}?folder={_workspace(owner)}", user=owner, Accept="text/html", Cookie="code-server-session=forged"
    )
    assert status == 200 and b"vscode-workbench-web-configuration" in body  # the client's own copy does not count

    # A notebook is personal: nobody else reaches its server.
    assert fetch(port, base, user=people["outsider"])[0] == 404
    for other in ("mate", "team_admin", "staff"):
        assert fetch(port, base, user=people[other])[0] == 403, other


@pytest.mark.browser
def test_vscode_opened_from_its_page_edits_the_workspace_in_a_browser(
    code_server, page: Page, asgi_server, origins, local_cluster, stop_all, owner, team
):
    notebook = _vscode(owner, team, local_cluster, name="browser")
    workspace = _workspace(owner)
    (workspace / "from-the-folder.txt").write_text("written beside the notebook\n")

    signed_in(page, asgi_server, owner)
    page.goto(f"{asgi_server.http_url}/notebooks/")
    row = page.locator(f"#notebook-{notebook.pk}")
    expect(row.locator(".notebook-state")).to_have_text("running")
    with page.context.expect_page() as opened:
        row.locator("a.notebook-open").click()
    code = opened.value
    # The workbench, built by VS Code's own scripts through the proxy, on the endpoint origin.
    expect(code.locator(".monaco-workbench")).to_be_visible(timeout=90_000)
    assert code.url.startswith(f"http://{origins.endpoints}/endpoints/{notebook.job.public_id}/notebook-0/vscode/")
    assert "_easyai_ticket" not in code.url
    seen = code.evaluate("document.cookie")
    assert not any(name in seen for name in (*PORTAL_COOKIES, "easyai_endpoint")), seen

    # The explorer lists the notebook's folder (read by the server over its websocket); a file put there opens
    # in the editor with its contents.
    item = code.get_by_role("treeitem", name=re.compile(r"from-the-folder\.txt"))
    expect(item).to_be_visible(timeout=60_000)
    item.dblclick()
    expect(code.locator(".monaco-editor .view-lines").first).to_contain_text(
        "written beside the notebook", timeout=30_000
    )

    # A terminal in the workbench is a shell in the task (node-pty, in the sandbox), in the notebook's folder:
    # what it writes is in the owner's workspace on disk.
    code.keyboard.press("Control+Backquote")
    terminal = code.locator(".terminal-wrapper .xterm").first
    expect(terminal).to_be_visible(timeout=60_000)
    terminal.click()
    code.keyboard.type("echo made-in-the-$((6*7))-terminal > from-the-terminal.txt\n")
    made = workspace / "from-the-terminal.txt"
    wait_until(lambda: made.exists() and made.read_text() == "made-in-the-42-terminal\n", 60, "the terminal's file")
    # And the explorer shows it, as VS Code's file watcher saw it appear.
    expect(code.get_by_role("treeitem", name=re.compile(r"from-the-terminal\.txt"))).to_be_visible(timeout=60_000)
