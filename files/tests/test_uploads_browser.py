"""The files page in a real headless browser: a large file goes in chunks with a progress bar, and a chunk
lost on the way is sent again from the portal's offset."""

from __future__ import annotations

import hashlib
import random

import pytest
from playwright.sync_api import Page, Route, expect

from files import uploads
from files.models import Upload
from files.tests.conftest import workspace
from testing.asgi import signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MiB = 2**20

# Every change of the bar's value, recorded from before the page's own scripts run.
WATCH_PROGRESS = """
window.__progress = [];
new MutationObserver(function (changes) {
  changes.forEach(function (change) {
    if (change.attributeName === "aria-valuenow") {
      window.__progress.push(Number(change.target.getAttribute("aria-valuenow")));
    }
  });
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["aria-valuenow"]});
"""


def test_the_page_uploads_a_large_file_in_chunks_with_progress_and_resumes_a_lost_chunk(
    page: Page, asgi_server, owner, monkeypatch
):
    monkeypatch.setattr(uploads, "CHUNK_SIZE", MiB)  # the server runs in this process: 12 chunks, not 2
    data = random.Random(12).randbytes(12 * MiB)
    offsets: list[int] = []

    def cut_the_third_chunk(route: Route) -> None:
        request = route.request
        if request.method != "PATCH":
            route.continue_()
            return
        offsets.append(int(request.headers["upload-offset"]))
        if len(offsets) == 3:
            route.abort("connectionreset")  # as a dropped connection: the page asks the portal where it is
            return
        route.continue_()

    page.route("**/api/v1/uploads/**", cut_the_third_chunk)
    page.add_init_script(WATCH_PROGRESS)
    signed_in(page, asgi_server, owner)
    page.goto(f"{asgi_server.http_url}/files/?space=personal")

    page.locator("#upload input[type=file]").set_input_files(
        {"name": "weights.bin", "mimeType": "application/octet-stream", "buffer": data}
    )
    page.get_by_role("button", name="Upload here").click()

    box = page.locator("#upload-progress")
    expect(box).to_be_visible()
    expect(box).to_have_attribute("data-upload-done", "", timeout=60_000)
    expect(box.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(box).to_contain_text("Uploaded.")
    seen = page.evaluate("window.__progress")
    assert any(0 < value < 100 for value in seen), seen  # the bar moved through the upload, not only at the end

    # The page reloads onto the listing, with the file in it.
    expect(page.locator("table").get_by_text("weights.bin")).to_be_visible(timeout=10_000)
    assert offsets == [0, MiB, 2 * MiB, 2 * MiB, *(n * MiB for n in range(3, 12))]
    placed = workspace("owner") / "weights.bin"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert Upload.objects.get().state == Upload.State.COMPLETE


def test_small_files_are_left_to_the_plain_form(page: Page, asgi_server, owner):
    signed_in(page, asgi_server, owner)
    page.goto(f"{asgi_server.http_url}/files/?space=personal")
    page.locator("#upload input[type=file]").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"notes"}
    )
    page.get_by_role("button", name="Upload here").click()
    expect(page.locator(".alert-success")).to_contain_text("Uploaded 1 file.")
    assert (workspace("owner") / "notes.txt").read_bytes() == b"notes"
    assert Upload.objects.count() == 0
