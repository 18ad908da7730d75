"""The workspace API: upload (raw PUT and multipart POST), list, download, folders, delete, refusals."""

from __future__ import annotations

import os

import pytest
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from files.tests.conftest import ALL_BYTES, body, files_url, snapshot, storage_root, workspace


def _names(response) -> dict[str, dict]:
    return {entry["name"]: entry for entry in response.json()["entries"]}


# --- round trips -------------------------------------------------------------------------


def test_raw_put_then_list_then_download_gives_the_same_bytes(api, owner):
    client = api(owner)
    put = client.put(files_url("personal", "data/deep/blob.bin"), ALL_BYTES, content_type="application/octet-stream")
    assert put.status_code == 201, put.content
    assert put.json()["path"] == "data/deep/blob.bin"
    assert put.json()["size"] == len(ALL_BYTES)

    listing = client.get(files_url("personal", "data/deep/"))
    assert listing.status_code == 200
    entry = _names(listing)["blob.bin"]
    assert entry == {**entry, "type": "file", "size": len(ALL_BYTES), "path": "data/deep/blob.bin"}
    assert entry["modified"]

    download = client.get(files_url("personal", "data/deep/blob.bin"))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert body(download) == ALL_BYTES
    assert (workspace("owner") / "data" / "deep" / "blob.bin").read_bytes() == ALL_BYTES


def test_put_replaces_a_file_and_answers_200(api, owner):
    client = api(owner)
    assert (
        client.put(files_url("personal", "a.txt"), b"one", content_type="application/octet-stream").status_code == 201
    )
    replaced = client.put(files_url("personal", "a.txt"), b"two!", content_type="application/octet-stream")
    assert replaced.status_code == 200
    assert body(client.get(files_url("personal", "a.txt"))) == b"two!"
    # the temporary file went away with the rename
    assert sorted(p.name for p in workspace("owner").iterdir()) == ["a.txt"]


def test_an_empty_file_can_be_uploaded(api, owner):
    client = api(owner)
    assert client.put(files_url("personal", "empty"), b"", content_type="application/octet-stream").status_code == 201
    assert (workspace("owner") / "empty").read_bytes() == b""


def test_raw_put_is_not_held_back_by_the_memory_limit_for_request_bodies(api, owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = os.urandom(300_000)
    response = api(owner).put(files_url("personal", "big.bin"), data, content_type="application/octet-stream")
    assert response.status_code == 201, response.content
    assert (workspace("owner") / "big.bin").read_bytes() == data


def test_multipart_post_uploads_several_files_into_a_folder(api, owner):
    client = api(owner)
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile("bytes.bin", ALL_BYTES), SimpleUploadedFile("train.py", b"print('hi')\n")]
    response = client.post(files_url("personal", "project/"), {"file": files}, format="multipart")
    assert response.status_code == 201, response.content
    assert [f["path"] for f in response.json()["files"]] == ["project/bytes.bin", "project/train.py"]

    listing = _names(client.get(files_url("personal", "project")))
    assert set(listing) == {"bytes.bin", "train.py"}
    assert body(client.get(files_url("personal", "project/bytes.bin"))) == ALL_BYTES
    assert body(client.get(files_url("personal", "project/train.py"))) == b"print('hi')\n"


def test_multipart_post_without_a_file_is_a_clear_400(api, owner):
    response = api(owner).post(files_url("personal", ""), {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


def test_unicode_names_round_trip(api, owner):
    client = api(owner)
    path = "数据/训练 模型 🚀.py"
    assert (
        client.put(files_url("personal", path), b"x = 1\n", content_type="application/octet-stream").status_code == 201
    )
    assert "训练 模型 🚀.py" in _names(client.get(files_url("personal", "数据")))
    download = client.get(files_url("personal", path))
    assert body(download) == b"x = 1\n"
    assert "filename*=utf-8''" in download["Content-Disposition"]


def test_listing_puts_folders_first(api, owner):
    root = workspace("owner")
    root.mkdir(parents=True)
    (root / "b.txt").write_text("b")
    (root / "z-folder").mkdir()
    (root / "A.txt").write_text("a")
    response = api(owner).get(files_url("personal"))
    assert [e["name"] for e in response.json()["entries"]] == ["z-folder", "A.txt", "b.txt"]
    assert response.json()["entries"][0]["type"] == "dir"
    assert response.json()["entries"][0]["size"] is None


def test_listing_asks_the_database_once_for_the_token_and_nothing_else(api, owner, django_assert_max_num_queries):
    client = api(owner)
    for index in range(20):
        (workspace("owner") / f"f{index}").parent.mkdir(parents=True, exist_ok=True)
        (workspace("owner") / f"f{index}").write_text("x")
    client.get(files_url("personal"))  # the token's once-a-minute last-use write is not the listing's
    with django_assert_max_num_queries(1):
        assert len(client.get(files_url("personal")).json()["entries"]) == 20


def test_inline_view_never_serves_html_as_html(api, owner):
    client = api(owner)
    client.put(files_url("public", "page.html"), b"<script>alert(1)</script>", content_type="application/octet-stream")
    inline = client.get(files_url("public", "page.html") + "?inline=1")
    assert inline["Content-Type"].startswith("text/plain")
    assert inline["Content-Security-Policy"] == "sandbox"
    assert not inline["Content-Disposition"].startswith("attachment")
    body(inline)
    client.put(files_url("public", "plot.png"), b"\x89PNG", content_type="application/octet-stream")
    png = client.get(files_url("public", "plot.png") + "?inline=1")
    assert png["Content-Type"] == "image/png"
    body(png)


def test_a_folder_downloads_as_a_zip(api, owner):
    import io
    import zipfile

    client = api(owner)
    client.put(files_url("personal", "proj/a.bin"), ALL_BYTES, content_type="application/octet-stream")
    client.put(files_url("personal", "proj/sub/b.txt"), b"b", content_type="application/octet-stream")
    response = client.get(files_url("personal", "proj/") + "?archive=zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        assert archive.read("a.bin") == ALL_BYTES
        assert archive.read("sub/b.txt") == b"b"


# --- folders and deletion ---------------------------------------------------------------------


def test_mkdir_creates_a_folder_once(api, owner):
    client = api(owner)
    assert client.put(files_url("personal", "runs/2024") + "?mkdir=1").status_code == 201
    assert (workspace("owner") / "runs" / "2024").is_dir()
    assert client.put(files_url("personal", "runs/2024") + "?mkdir=1").status_code == 200
    client.put(files_url("personal", "runs/file"), b"x", content_type="application/octet-stream")
    assert client.put(files_url("personal", "runs/file") + "?mkdir=1").status_code == 409


def test_a_file_cannot_replace_a_folder_nor_go_below_a_file(api, owner):
    client = api(owner)
    client.put(files_url("personal", "dir") + "?mkdir=1")
    client.put(files_url("personal", "file"), b"x", content_type="application/octet-stream")
    assert client.put(files_url("personal", "dir"), b"x", content_type="application/octet-stream").status_code == 409
    assert (
        client.put(files_url("personal", "file/below"), b"x", content_type="application/octet-stream").status_code
        == 409
    )
    assert (workspace("owner") / "file").read_bytes() == b"x"


def test_delete_a_file_an_empty_folder_and_a_tree(api, owner):
    client = api(owner)
    client.put(files_url("personal", "tree/a/b.txt"), b"x", content_type="application/octet-stream")
    client.put(files_url("personal", "empty") + "?mkdir=1")
    client.put(files_url("personal", "one.txt"), b"1", content_type="application/octet-stream")

    assert client.delete(files_url("personal", "one.txt")).status_code == 204
    assert client.delete(files_url("personal", "empty")).status_code == 204
    refused = client.delete(files_url("personal", "tree"))
    assert refused.status_code == 409
    assert (workspace("owner") / "tree" / "a" / "b.txt").exists()
    assert client.delete(files_url("personal", "tree") + "?recursive=1").status_code == 204
    assert list(workspace("owner").iterdir()) == []
    assert client.delete(files_url("personal", "nothing-here")).status_code == 404


@pytest.mark.parametrize("path", ["", "/", ".", "./"])
def test_the_workspace_itself_is_never_deleted(api, owner, path):
    client = api(owner)
    client.put(files_url("personal", "keep.txt"), b"x", content_type="application/octet-stream")
    response = client.delete(files_url("personal", path) + "?recursive=1")
    assert response.status_code == 400
    assert (workspace("owner") / "keep.txt").exists()


# --- who sees which workspace ---------------------------------------------------------------


def test_personal_workspaces_are_separate_and_public_is_shared(api, owner, mate, outsider):
    api(owner).put(files_url("personal", "mine.txt"), b"owner's", content_type="application/octet-stream")
    assert api(mate).get(files_url("personal", "mine.txt")).status_code == 404
    assert (workspace("mate")).is_dir() and not (workspace("mate") / "mine.txt").exists()

    api(owner).put(files_url("public", "shared.txt"), b"for all", content_type="application/octet-stream")
    assert body(api(outsider).get(files_url("public", "shared.txt"))) == b"for all"
    assert api(mate).delete(files_url("public", "shared.txt")).status_code == 204


def test_anonymous_callers_get_401(api, owner):
    anonymous = api(None)
    assert anonymous.get(files_url("public")).status_code == 401
    assert anonymous.put(files_url("public", "x"), b"x", content_type="application/octet-stream").status_code == 401
    assert anonymous.delete(files_url("public", "x")).status_code == 401
    assert not (storage_root() / "notebook" / "public" / "x").exists()


def test_unknown_space_is_404(api, owner):
    assert api(owner).get(files_url("other", "")).status_code == 404


@pytest.mark.parametrize("username", ["public", ".."])
def test_a_reserved_username_has_no_personal_workspace(api, make_user, username):
    user = make_user(username)
    response = api(user).put(files_url("personal", "x.txt"), b"x", content_type="application/octet-stream")
    assert response.status_code == 403
    assert not (storage_root() / "notebook" / "public" / "x.txt").exists()
    assert not (storage_root() / "x.txt").exists()


def test_upload_limit_is_enforced_and_leaves_nothing(api, owner, settings):
    settings.EASYAI_UPLOAD_MAX_BYTES = 10
    client = api(owner)
    response = client.put(files_url("personal", "big.bin"), b"x" * 11, content_type="application/octet-stream")
    assert response.status_code == 413
    assert list(workspace("owner").rglob("*")) == []
    assert (
        client.put(files_url("personal", "ok.bin"), b"x" * 10, content_type="application/octet-stream").status_code
        == 201
    )


def test_upload_limit_also_holds_when_the_body_outgrows_its_declared_length(owner, settings, tmp_path):
    """A body longer than declared is cut by the server; the running count is the second line of defence."""
    from files import services
    from files.spaces import workspace_location

    location = workspace_location(owner, "personal", "stream.bin")
    with pytest.raises(services.UploadTooLargeError):
        services.file_upload(location=location, chunks=iter([b"x" * 6, b"x" * 6]), max_bytes=10)
    assert list(workspace("owner").rglob("*")) == []


# --- CSRF on session writes ---------------------------------------------------------------------


def test_session_writes_need_a_csrf_token_and_token_writes_do_not(owner, api):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(owner)
    refused = browser.put(files_url("personal", "s.txt"), b"x", content_type="application/octet-stream")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert browser.delete(files_url("personal", "s.txt")).status_code == 403
    assert not (workspace("owner") / "s.txt").exists()

    token = get_random_string(32)
    browser.cookies["csrftoken"] = token
    accepted = browser.put(
        files_url("personal", "s.txt"), b"x", content_type="application/octet-stream", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201
    # reading needs no token
    assert browser.get(files_url("personal", "s.txt")).status_code == 200

    # the CLI's token needs none either
    assert (
        api(owner).put(files_url("personal", "t.txt"), b"y", content_type="application/octet-stream").status_code == 201
    )


def test_session_multipart_post_needs_a_csrf_token(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(owner)
    response = browser.post(files_url("personal", ""), {"file": SimpleUploadedFile("a.txt", b"a")}, format="multipart")
    assert response.status_code == 403
    assert not (workspace("owner") / "a.txt").exists()


# --- refused paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_path",
    [
        "../escape.txt",
        "%2e%2e/escape.txt",  # decoded by Django into ".."
        "a/%2E%2E/%2e%2e/escape.txt",
        "/escape.txt",  # a double slash after the space: an absolute path
        "%2Fescape.txt",
        "bad%00name.txt",
    ],
)
def test_uploads_through_refused_paths_change_nothing(api, owner, outside, url_path):
    client = api(owner)
    client.put(files_url("personal", "keep.txt"), b"keep", content_type="application/octet-stream")
    before = snapshot(storage_root(), outside)
    url = f"/api/v1/files/personal/{url_path}"
    response = client.put(url, b"evil", content_type="application/octet-stream")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["path"]
    assert client.get(url).status_code == 400
    assert client.delete(url).status_code == 400
    assert client.put(url + "?mkdir=1").status_code == 400
    assert snapshot(storage_root(), outside) == before


def test_a_directory_symlink_pointing_out_is_refused_for_upload_and_read(api, owner, outside):
    client = api(owner)
    root = workspace("owner")
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    before = snapshot(storage_root(), outside)

    for path in ["link/new.txt", "link/secret.txt", "link/deeper/new.txt"]:
        response = client.put(files_url("personal", path), b"evil", content_type="application/octet-stream")
        assert response.status_code == 400, path
        assert "outside" in response.json()["path"][0]
    assert client.put(files_url("personal", "link/newdir") + "?mkdir=1").status_code == 400
    assert client.get(files_url("personal", "link/secret.txt")).status_code == 400
    assert client.get(files_url("personal", "link/")).status_code == 400
    assert client.get(files_url("personal", "link/") + "?archive=zip").status_code == 400
    from django.core.files.uploadedfile import SimpleUploadedFile

    post = client.post(
        files_url("personal", "link/"), {"file": SimpleUploadedFile("x.txt", b"evil")}, format="multipart"
    )
    assert post.status_code == 400
    assert snapshot(storage_root(), outside) == before

    # the listing shows the link but not what lies behind it
    entry = _names(client.get(files_url("personal")))["link"]
    assert entry["type"] == "other" and entry["size"] is None and entry["modified"] is None


def test_a_file_symlink_pointing_out_is_refused_and_the_target_stays_intact(api, owner, outside):
    client = api(owner)
    root = workspace("owner")
    root.mkdir(parents=True)
    (root / "evil").symlink_to(outside / "secret.txt")
    before = snapshot(storage_root(), outside)
    assert (
        client.put(files_url("personal", "evil"), b"overwritten", content_type="application/octet-stream").status_code
        == 400
    )
    assert client.get(files_url("personal", "evil")).status_code == 400
    assert client.get(files_url("personal", "evil") + "?inline=1").status_code == 400
    assert snapshot(storage_root(), outside) == before
    assert (outside / "secret.txt").read_text() == "secret"


def test_deleting_a_symlink_removes_the_link_and_never_its_target(api, owner, outside):
    client = api(owner)
    root = workspace("owner")
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert client.delete(files_url("personal", "link") + "?recursive=1").status_code == 204
    assert not (root / "link").is_symlink()
    assert (outside / "secret.txt").read_text() == "secret"
    # but nothing below the link can be deleted
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert client.delete(files_url("personal", "link/secret.txt")).status_code == 400
    assert (outside / "secret.txt").exists()


def test_a_zip_leaves_out_links_pointing_out(api, owner, outside):
    import io
    import zipfile

    client = api(owner)
    root = workspace("owner")
    (root / "proj").mkdir(parents=True)
    (root / "proj" / "ok.txt").write_text("ok")
    (root / "proj" / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "proj" / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "proj" / "alias.txt").symlink_to(root / "proj" / "ok.txt")
    with zipfile.ZipFile(io.BytesIO(body(client.get(files_url("personal", "proj") + "?archive=zip")))) as archive:
        assert sorted(archive.namelist()) == ["alias.txt", "ok.txt"]


def test_a_named_pipe_is_refused_not_waited_on(api, owner):
    root = workspace("owner")
    root.mkdir(parents=True)
    os.mkfifo(root / "pipe")
    response = api(owner).get(files_url("personal", "pipe"))
    assert response.status_code == 400
    assert _names(api(owner).get(files_url("personal")))["pipe"]["type"] == "other"


def test_a_chunked_put_without_length_is_refused_rather_than_stored_empty(api, owner):
    response = api(owner).put(
        files_url("personal", "c.bin"), b"", content_type="application/octet-stream", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411
    assert not (workspace("owner") / "c.bin").exists()


def test_an_uploaded_train_py_is_in_the_working_directory_of_a_local_job(api, owner, fake_backend):
    client = api(owner)
    client.put(files_url("personal", "train.py"), b"print('training')\n", content_type="application/octet-stream")
    spec = {
        "name": "t",
        "team": "vision",
        "framework": "batch",
        "image": "python:3.11",
        "roles": {"main": {"replicas": 1, "command": "python train.py"}},
    }
    dry_run = client.post("/api/v1/jobs/?dry_run=1", spec, format="json")
    assert dry_run.status_code == 200, dry_run.content
    working_dir = dry_run.json()["description"]["tasks"][0]["working_dir"]
    assert os.path.samefile(working_dir, workspace("owner"))
    assert (workspace("owner") / "train.py").read_bytes() == b"print('training')\n"
