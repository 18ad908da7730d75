"""Resumable uploads (/api/v1/uploads/): chunks at the portal's offset, resume, digest, expiry, who sees one."""

from __future__ import annotations

import fcntl
import hashlib
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from easyai_site import limits
from files import uploads
from files.models import Upload
from files.tests.conftest import storage_root, workspace

MiB = 2**20


def big_file(size: int = 20 * MiB, seed: int = 20) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staged_files() -> list[str]:
    staging = storage_root() / uploads.STAGING
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def create(client, *, space="personal", path="big/blob.bin", size: int, digest: str = ""):
    data = {"space": space, "path": path, "size": size}
    if digest:
        data["sha256"] = digest
    return client.post("/api/v1/uploads/", data, format="json")


def send(client, url: str, offset: int, chunk: bytes):
    return client.patch(url, chunk, content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET=str(offset))


# --- the whole protocol ---------------------------------------------------------------------------


def test_an_interrupted_large_upload_resumes_from_the_portals_offset_and_the_digest_matches(api, owner):
    data = big_file()
    chunk = 4 * MiB
    first = api(owner)
    created = create(first, size=len(data), digest=sha256(data))
    assert created.status_code == 201, created.content
    upload = created.json()
    assert upload["offset"] == 0 and upload["state"] == "receiving" and upload["chunk_size"] > 0
    assert created["Location"] == upload["url"] == f"/api/v1/uploads/{upload['id']}/"

    # The first client sends two chunks, then dies: nothing is in the workspace yet, not even a part file.
    for offset in (0, chunk):
        answer = send(first, upload["url"], offset, data[offset : offset + chunk])
        assert answer.status_code == 200, answer.content
        assert answer["Upload-Offset"] == str(offset + chunk)
    assert not (workspace("owner") / "big").exists()

    # A new client (a restarted one) asks where the portal is, and goes on from there.
    second = api(owner)
    head = second.head(upload["url"])
    assert head.status_code == 200
    assert head["Upload-Offset"] == str(2 * chunk) and head["Upload-Length"] == str(len(data))
    offset = int(head["Upload-Offset"])
    while offset < len(data):
        answer = send(second, upload["url"], offset, data[offset : offset + chunk])
        assert answer.status_code == 200, answer.content
        offset = int(answer["Upload-Offset"])

    done = answer.json()
    assert done["state"] == "complete" and done["offset"] == len(data)
    assert done["sha256"] == sha256(data)
    assert done["file"] == {**done["file"], "path": "big/blob.bin", "size": len(data), "type": "file"}
    assert done["created"] is True
    placed = workspace("owner") / "big" / "blob.bin"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == sha256(data)
    assert oct(placed.stat().st_mode & 0o777) == "0o644"
    assert staged_files() == []
    # The files API lists it like any other file.
    listing = second.get("/api/v1/files/personal/big/").json()
    assert [entry["name"] for entry in listing["entries"]] == ["blob.bin"]


def test_a_chunk_whose_connection_breaks_keeps_what_arrived_and_the_upload_goes_on_from_there(owner):
    data = big_file(3 * MiB)
    upload = uploads.upload_create(user=owner, space="personal", path="cut.bin", size=len(data), sha256=sha256(data))

    def breaks_off():
        yield data[:MiB]
        yield data[MiB : MiB + 1000]
        raise OSError("connection reset by peer")

    with pytest.raises(OSError, match="reset"):
        uploads.upload_append(user=owner, upload_id=upload.id, offset=0, chunks=breaks_off())
    assert uploads.upload_for(owner, upload.id).offset == MiB + 1000

    done = uploads.upload_append(user=owner, upload_id=upload.id, offset=MiB + 1000, chunks=[data[MiB + 1000 :]])
    assert done.upload.state == Upload.State.COMPLETE and done.sha256 == sha256(data)
    assert (workspace("owner") / "cut.bin").read_bytes() == data


def test_a_file_already_there_is_replaced_and_answered_as_not_new(api, owner):
    (workspace("owner")).mkdir(parents=True)
    (workspace("owner") / "a.bin").write_bytes(b"old")
    client = api(owner)
    upload = create(client, path="a.bin", size=3).json()
    answer = send(client, upload["url"], 0, b"new")
    assert answer.status_code == 200 and answer.json()["created"] is False
    assert (workspace("owner") / "a.bin").read_bytes() == b"new"


def test_an_empty_file_is_placed_by_an_empty_chunk(api, owner):
    client = api(owner)
    upload = create(client, path="empty", size=0, digest=sha256(b"")).json()
    assert send(client, upload["url"], 0, b"").json()["state"] == "complete"
    assert (workspace("owner") / "empty").read_bytes() == b""


# --- refusals ----------------------------------------------------------------------------------------


def test_a_wrong_offset_is_409_with_the_portals_offset_and_writes_nothing(api, owner):
    client = api(owner)
    upload = create(client, size=100).json()
    assert send(client, upload["url"], 0, b"x" * 40).status_code == 200

    for wrong in (0, 39, 41, 100):
        answer = send(client, upload["url"], wrong, b"y" * 10)
        assert answer.status_code == 409, answer.content
        assert answer.json()["offset"] == 40 and answer["Upload-Offset"] == "40"
    assert client.get(upload["url"]).json()["offset"] == 40
    assert send(client, upload["url"], 40, b"z" * 60).json()["state"] == "complete"
    assert (workspace("owner") / "big" / "blob.bin").read_bytes() == b"x" * 40 + b"z" * 60


def test_a_missing_or_malformed_offset_is_400(api, owner):
    client = api(owner)
    upload = create(client, size=10).json()
    assert client.patch(upload["url"], b"abc", content_type="application/offset+octet-stream").status_code == 400
    assert send(client, upload["url"], "-1", b"abc").status_code == 400  # type: ignore[arg-type]
    assert client.get(upload["url"]).json()["offset"] == 0


def test_a_second_writer_of_the_same_upload_is_told_the_offset_not_let_in(api, owner):
    client = api(owner)
    upload = create(client, size=10).json()
    staged = storage_root() / uploads.STAGING / f"{upload['id'].replace('-', '')}.part"
    with open(staged, "rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)  # as a request writing a chunk holds it
        answer = send(client, upload["url"], 0, b"0123456789")
    assert answer.status_code == 409 and answer.json()["offset"] == 0
    assert staged.read_bytes() == b""


def test_a_wrong_digest_is_refused_and_nothing_is_placed(api, owner):
    data = big_file(5 * MiB)
    client = api(owner)
    upload = create(client, size=len(data), digest=sha256(b"something else")).json()
    assert send(client, upload["url"], 0, data[: 3 * MiB]).status_code == 200
    answer = send(client, upload["url"], 3 * MiB, data[3 * MiB :])
    assert answer.status_code == 400
    assert "sha256" in answer.json() and sha256(data) in answer.json()["sha256"][0]
    assert not (workspace("owner") / "big").exists()
    assert staged_files() == []
    assert client.head(upload["url"]).status_code == 404


def test_a_chunk_past_the_size_is_413_and_changes_nothing(api, owner):
    client = api(owner)
    upload = create(client, size=10).json()
    assert send(client, upload["url"], 0, b"12345").status_code == 200
    assert send(client, upload["url"], 5, b"678901").status_code == 413
    assert client.get(upload["url"]).json()["offset"] == 5
    assert send(client, upload["url"], 5, b"67890").json()["state"] == "complete"
    assert (workspace("owner") / "big" / "blob.bin").read_bytes() == b"1234567890"


def test_the_upload_limit_applies_to_the_whole_file_at_creation(api, owner, settings):
    settings.EASYAI_UPLOAD_MAX_BYTES = 1000
    answer = create(api(owner), size=1001)
    assert answer.status_code == 413
    assert Upload.objects.count() == 0 and staged_files() == []
    assert create(api(owner), size=1000).status_code == 201


@pytest.mark.parametrize(
    ("space", "path", "expected"),
    [
        ("nowhere", "a.bin", 404),
        ("personal", "../escape.bin", 400),
        ("personal", "/abs.bin", 400),
        ("personal", "", 400),
        ("personal", "folder", 409),
    ],
)
def test_the_target_is_checked_as_the_files_api_checks_it(api, owner, space, path, expected):
    (workspace("owner") / "folder").mkdir(parents=True)
    answer = create(api(owner), space=space, path=path, size=10)
    assert answer.status_code == expected, answer.content
    assert Upload.objects.count() == 0


def test_a_malformed_digest_is_400(api, owner):
    answer = create(api(owner), size=10, digest="abc")
    assert answer.status_code == 400 and "sha256" in answer.json()


def test_a_folder_made_at_the_target_meanwhile_keeps_the_bytes_until_it_is_cleared(api, owner):
    client = api(owner)
    upload = create(client, path="late.bin", size=4).json()
    (workspace("owner") / "late.bin").mkdir(parents=True)
    assert send(client, upload["url"], 0, b"abcd").status_code == 409
    assert client.get(upload["url"]).json()["offset"] == 4
    (workspace("owner") / "late.bin").rmdir()
    assert send(client, upload["url"], 4, b"").json()["state"] == "complete"
    assert (workspace("owner") / "late.bin").read_bytes() == b"abcd"


def test_a_complete_upload_answers_a_repeated_last_chunk_with_its_offset(api, owner):
    client = api(owner)
    upload = create(client, size=3).json()
    assert send(client, upload["url"], 0, b"abc").status_code == 200
    again = send(client, upload["url"], 0, b"abc")
    assert again.status_code == 409 and again.json()["offset"] == 3
    assert client.get(upload["url"]).json()["state"] == "complete"


def test_a_user_may_have_only_so_many_uploads_open(api, owner, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_OPEN_PER_USER", 2)
    client = api(owner)
    assert [create(client, path=f"{n}.bin", size=1).status_code for n in range(3)] == [201, 201, 409]


# --- spaces and who sees an upload ------------------------------------------------------------------


def test_uploads_go_to_the_public_workspace_and_the_data_space_too(api, owner, mate):
    for user, space, folder in (
        (mate, "public", storage_root() / "notebook" / "public"),
        (owner, "data", storage_root() / "data" / "owner"),
    ):
        client = api(user)
        upload = create(client, space=space, path="train/part-0.csv", size=3).json()
        assert send(client, upload["url"], 0, b"a,b").json()["state"] == "complete"
        assert (folder / "train" / "part-0.csv").read_bytes() == b"a,b"


@pytest.mark.parametrize("who", ["mate", "team_admin", "outsider", "staff"])
def test_only_the_uploader_sees_their_upload(api, people, who):
    owner = people["owner"]
    upload = create(api(owner), size=4).json()
    other = api(people[who])
    assert other.head(upload["url"]).status_code == 404
    assert other.get(upload["url"]).status_code == 404
    assert send(other, upload["url"], 0, b"evil").status_code == 404
    assert other.delete(upload["url"]).status_code == 404
    mine = api(owner)
    assert mine.get(upload["url"]).json()["offset"] == 0
    assert send(mine, upload["url"], 0, b"good").json()["state"] == "complete"


def test_anonymous_callers_cannot_create_or_touch_an_upload(api, owner):
    upload = create(api(owner), size=4).json()
    anonymous = api(None)
    assert create(anonymous, size=4).status_code in (401, 403)
    assert send(anonymous, upload["url"], 0, b"evil").status_code in (401, 403)
    assert api(owner).get(upload["url"]).json()["offset"] == 0


def test_an_unknown_id_is_404(api, owner):
    client = api(owner)
    assert client.head("/api/v1/uploads/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/api/v1/uploads/not-a-uuid/").status_code == 404


def test_cancelling_drops_the_bytes(api, owner):
    client = api(owner)
    upload = create(client, size=10).json()
    send(client, upload["url"], 0, b"12345")
    assert client.delete(upload["url"]).status_code == 204
    assert client.get(upload["url"]).status_code == 404
    assert staged_files() == [] and Upload.objects.count() == 0


# --- expiry ---------------------------------------------------------------------------------------


def _age(upload_id: str, hours: float) -> None:
    Upload.objects.filter(pk=upload_id).update(expires=timezone.now() - timedelta(hours=hours))


def test_an_expired_upload_is_gone_when_asked_for_and_its_bytes_removed(api, owner):
    client = api(owner)
    upload = create(client, size=10).json()
    send(client, upload["url"], 0, b"12345")
    _age(upload["id"], 1)
    assert client.head(upload["url"]).status_code == 404
    assert send(client, upload["url"], 5, b"67890").status_code == 404
    assert staged_files() == [] and Upload.objects.count() == 0


def test_expired_uploads_are_swept_when_anyone_creates_one(api, owner, mate):
    stale = create(api(owner), path="stale.bin", size=10).json()
    _age(stale["id"], 1)
    kept = create(api(owner), path="kept.bin", size=10).json()
    assert create(api(mate), space="public", path="x.bin", size=1).status_code == 201
    assert not Upload.objects.filter(pk=stale["id"]).exists()
    assert Upload.objects.filter(pk=kept["id"]).exists()
    assert len(staged_files()) == 2


def test_each_chunk_extends_the_expiry_and_the_sweep_is_a_service(api, owner, settings):
    settings.EASYAI_UPLOAD_RESUME_HOURS = 2
    client = api(owner)
    upload = create(client, size=10).json()
    Upload.objects.filter(pk=upload["id"]).update(expires=timezone.now() + timedelta(minutes=1))
    send(client, upload["url"], 0, b"12345")
    expires = Upload.objects.get(pk=upload["id"]).expires
    assert expires > timezone.now() + timedelta(hours=1, minutes=59)
    assert uploads.uploads_expire(now=expires - timedelta(seconds=1)) == 0
    assert uploads.uploads_expire(now=expires + timedelta(seconds=1)) == 1
    assert staged_files() == [] and Upload.objects.count() == 0


# --- the site around it ------------------------------------------------------------------------------


def test_chunks_get_the_upload_limit_not_the_small_body_limit(settings):
    settings.EASYAI_MAX_BODY_BYTES = 1024
    assert limits.limit_for("/api/v1/uploads/0b6c1f2e-8a53-4b7c-9a51-d5c4b1f0a111/") > 100 * MiB
    assert limits.limit_for("/api/v1/uploads/") == 1024  # creating one is a small JSON call


def test_the_uploads_api_is_in_the_schema(api, owner):
    schema = api(owner).get("/api/schema/").content.decode()
    assert "/api/v1/uploads/:" in schema and "/api/v1/uploads/{upload_id}/:" in schema
    assert "Upload-Offset" in schema


def test_operators_see_uploads_in_the_admin_and_cancelling_removes_the_bytes(api, owner, make_user):
    from django.test import Client

    client = api(owner)
    upload = create(client, size=10).json()
    send(client, upload["url"], 0, b"12345")
    operator = Client()
    operator.force_login(make_user("root", is_staff=True, is_superuser=True))
    listing = operator.get("/admin/files/upload/")
    assert listing.status_code == 200 and "big/blob.bin" in listing.content.decode()
    answer = operator.post(
        "/admin/files/upload/", {"action": "cancel_uploads", "_selected_action": [upload["id"]]}, follow=True
    )
    assert "Cancelled 1 upload." in answer.content.decode()
    assert staged_files() == [] and Upload.objects.count() == 0


def test_the_sites_clock_sweeps_expired_uploads(api, owner):
    from django.apps import apps
    from django.core.cache import cache

    upload = create(api(owner), size=10).json()
    _age(upload["id"], 1)
    cache.delete("easyai:uploads-expire")
    for work in apps.get_app_config("files").periodic_work:
        work({})  # django-q2 runs the task inline in tests
    assert Upload.objects.count() == 0 and staged_files() == []
