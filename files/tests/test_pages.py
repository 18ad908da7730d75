"""The file browser and job outputs pages: listing, upload, folders, delete, downloads, refusals."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from files.tests.conftest import ALL_BYTES, body, snapshot, storage_root, workspace


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def browser_url(**query: str) -> str:
    return f"/files/?{urlencode(query)}" if query else "/files/"


def csrf_token(client: Client) -> str:
    """The token a real browser would send: the page sets the cookie, the form carries it."""
    assert client.get("/files/").status_code == 200
    return client.cookies["csrftoken"].value


# --- workspace browser -------------------------------------------------------------------------


def test_the_browser_lists_the_workspace_with_breadcrumbs(owner):
    root = workspace("owner")
    (root / "project" / "data").mkdir(parents=True)
    (root / "project" / "train.py").write_text("print(1)")
    client = signed_in(owner)

    page = client.get(browser_url(space="personal", path="project"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "train.py" in content and "data/" in content
    assert 'id="crumbs"' in content and ">project<" in content
    assert 'enctype="multipart/form-data"' in content and "csrfmiddlewaretoken" in content
    assert "/files/download/?space=personal&amp;path=project/train.py" in content


def test_the_files_page_is_in_the_navigation(owner):
    assert 'href="/files/"' in signed_in(owner).get("/").content.decode()


def test_the_public_workspace_page_lists_shared_files(owner, mate):
    (storage_root() / "notebook" / "public").mkdir(parents=True)
    (storage_root() / "notebook" / "public" / "dataset.csv").write_text("a,b")
    assert "dataset.csv" in signed_in(mate).get(browser_url(space="public")).content.decode()


def test_anonymous_visitors_are_sent_to_sign_in():
    response = Client().get("/files/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_uploading_several_files_from_the_page_with_a_csrf_token(owner):
    client = signed_in(owner, enforce_csrf_checks=True)
    token = csrf_token(client)
    response = client.post(
        "/files/upload/",
        {
            "space": "personal",
            "path": "inbox",
            "file": [SimpleUploadedFile("bytes.bin", ALL_BYTES), SimpleUploadedFile("notes.txt", b"notes")],
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/files/?space=personal&path=inbox"
    assert (workspace("owner") / "inbox" / "bytes.bin").read_bytes() == ALL_BYTES
    page = client.get(response["Location"])
    assert "Uploaded 2 files." in page.content.decode()
    assert "notes.txt" in page.content.decode()


def test_page_writes_without_a_csrf_token_are_refused(owner):
    client = signed_in(owner, enforce_csrf_checks=True)
    response = client.post(
        "/files/upload/", {"space": "personal", "path": "", "file": SimpleUploadedFile("a.txt", b"a")}
    )
    assert response.status_code == 403
    assert client.post("/files/folder/", {"space": "personal", "path": "", "name": "x"}).status_code == 403
    assert not (workspace("owner") / "a.txt").exists()
    assert not (workspace("owner") / "x").exists()


def test_new_folder_and_delete_from_the_page(owner):
    client = signed_in(owner)
    assert client.post("/files/folder/", {"space": "personal", "path": "", "name": "runs"}).status_code == 302
    assert (workspace("owner") / "runs").is_dir()
    (workspace("owner") / "runs" / "log.txt").write_text("x")
    response = client.post("/files/delete/", {"space": "personal", "path": "runs", "recursive": "1"}, follow=True)
    assert not (workspace("owner") / "runs").exists()
    assert "Deleted runs." in response.content.decode()


def test_a_folder_name_with_a_slash_is_refused_on_the_page(owner):
    client = signed_in(owner)
    response = client.post("/files/folder/", {"space": "personal", "path": "", "name": "../up"}, follow=True)
    assert "without" in response.content.decode()
    assert not (storage_root() / "notebook" / "up").exists()


def test_the_page_offers_confirmed_delete_forms(owner):
    (workspace("owner")).mkdir(parents=True)
    (workspace("owner") / "x.txt").write_text("x")
    content = signed_in(owner).get("/files/").content.decode()
    assert 'action="/files/delete/"' in content and 'data-confirm="Delete x.txt?"' in content


@pytest.mark.parametrize("path", ["../", "..", "/etc", "a/../../b", "x\x00y"])
def test_a_refused_path_on_the_page_is_a_clear_400_not_a_500(owner, path):
    response = signed_in(owner).get(browser_url(space="personal", path=path))
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()


def test_a_missing_folder_is_a_404_message(owner):
    response = signed_in(owner).get(browser_url(space="personal", path="nowhere"))
    assert response.status_code == 404
    assert "No such file or folder." in response.content.decode()


def test_the_page_refuses_a_symlink_pointing_out_and_changes_nothing(owner, outside):
    root = workspace("owner")
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    client = signed_in(owner)
    before = snapshot(storage_root(), outside)
    assert client.get(browser_url(space="personal", path="link")).status_code == 400
    upload = client.post(
        "/files/upload/",
        {"space": "personal", "path": "link", "file": SimpleUploadedFile("evil.txt", b"evil")},
        follow=True,
    )
    assert "outside" in upload.content.decode()
    download = client.get("/files/download/?" + urlencode({"space": "personal", "path": "link/secret.txt"}))
    assert download.status_code == 302
    assert snapshot(storage_root(), outside) == before


def test_a_file_path_on_the_browser_redirects_to_its_download(owner):
    (workspace("owner")).mkdir(parents=True)
    (workspace("owner") / "w.bin").write_bytes(ALL_BYTES)
    client = signed_in(owner)
    response = client.get(browser_url(space="personal", path="w.bin"))
    assert response.status_code == 302
    download = client.get(response["Location"])
    assert body(download) == ALL_BYTES


# --- job outputs page --------------------------------------------------------------------------------


def test_the_job_outputs_page_lists_outputs_and_zip_links(owner, job):
    page = signed_in(owner).get(f"/jobs/{job.public_id}/outputs/")
    assert page.status_code == 200
    content = page.content.decode()
    for output in ["model_dir/", "summary_dir/master-0/", "summary_dir/worker-0/", "log_dir/", "share_dir/"]:
        assert output in content
    assert f"/jobs/{job.public_id}/outputs/download/?path=model_dir&amp;archive=zip" in content


def test_the_job_outputs_page_browses_and_downloads(owner, job):
    client = signed_in(owner)
    content = client.get(f"/jobs/{job.public_id}/outputs/?path=model_dir").content.decode()
    assert "model.bin" in content and "checkpoints/" in content
    assert "upload" not in content.lower() and "delete" not in content.lower()  # read-only
    download = client.get(f"/jobs/{job.public_id}/outputs/download/?path=model_dir/model.bin")
    assert body(download) == ALL_BYTES
    archive = client.get(f"/jobs/{job.public_id}/outputs/download/?path=model_dir&archive=zip")
    with zipfile.ZipFile(io.BytesIO(body(archive))) as zipped:
        assert zipped.read("model.bin") == ALL_BYTES


def test_summary_dir_on_the_page_lists_tasks(owner, job):
    content = signed_in(owner).get(f"/jobs/{job.public_id}/outputs/?path=summary_dir").content.decode()
    assert "master-0/" in content and "worker-0/" in content


@pytest.mark.parametrize(
    "who,expected", [("owner", 200), ("mate", 200), ("team_admin", 200), ("staff", 200), ("outsider", 404)]
)
def test_who_may_see_the_job_outputs_page(people, job, who, expected):
    client = signed_in(people[who])
    assert client.get(f"/jobs/{job.public_id}/outputs/").status_code == expected
    assert client.get(f"/jobs/{job.public_id}/outputs/download/?path=model_dir/model.bin").status_code == expected


def test_anonymous_visitors_of_job_outputs_sign_in_first(job):
    assert Client().get(f"/jobs/{job.public_id}/outputs/").status_code == 302


@pytest.mark.parametrize("path", ["model_dir/../../notebook", "../", "summary_dir/..", "/etc"])
def test_a_refused_output_path_on_the_page_is_a_400_message(owner, job, path):
    response = signed_in(owner).get(f"/jobs/{job.public_id}/outputs/?" + urlencode({"path": path}))
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
