"""The model registry's store: the file store under the storage root, and the S3 store against a real S3 server
(moto's, on loopback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from serving import store as store_module
from serving.store import FileStore, S3Store, model_store, reset_model_store, version_prefix

PREFIX = "models/vision/iris/1"
BAD_KEYS = ["", "/etc/passwd", "models/../../etc", "models//x", "models/x/", "./models", "..", "a\\b", "a\nb"]


@pytest.fixture
def root(settings) -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


@pytest.fixture
def files(root) -> FileStore:
    reset_model_store()
    found = model_store()
    assert isinstance(found, FileStore) and found.scheme == "file"
    return found


def every_file(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- keys -------------------------------------------------------------------------------------------------


def test_version_prefix_is_the_registry_layout():
    assert version_prefix("vision", "iris", 3) == "models/vision/iris/3"


@pytest.mark.parametrize(
    ("team", "model", "version"),
    [("vision", "a/b", 1), ("vision", "..", 1), ("", "iris", 1), ("vision", "iris", 0), ("vision", "iris", True)],
)
def test_version_prefix_refuses_names_that_are_not_one_part(team, model, version):
    with pytest.raises(ValueError):
        version_prefix(team, model, version)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_file_store_refuses_bad_keys_and_writes_nothing(files, root, key):
    for call in (
        lambda: files.put_bytes(key, b"x"),
        lambda: files.open(key),
        lambda: files.size(key),
        lambda: files.list(key),
        lambda: files.delete_prefix(key),
        lambda: files.local_dir(key),
        lambda: files.uri(key),
    ):
        with pytest.raises(ValueError):
            call()
    assert not root.parent.joinpath("etc").exists()
    assert every_file(root.parent) == []


def test_a_key_may_not_name_the_stores_partial_files(files):
    with pytest.raises(ValueError):
        files.put_bytes(f"{PREFIX}/{store_module.PARTIAL}x", b"x")


# --- the file store ---------------------------------------------------------------------------------------


def test_file_store_round_trip(files, root, tmp_path):
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights" * 1000)
    files.put_file(f"{PREFIX}/model.joblib", source)
    files.put_bytes(f"{PREFIX}/sub/config.json", b"{}")

    assert (root / PREFIX / "model.joblib").read_bytes() == source.read_bytes()
    with files.open(f"{PREFIX}/model.joblib") as handle:
        assert handle.read() == source.read_bytes()
    assert files.size(f"{PREFIX}/model.joblib") == 7000
    assert files.size(f"{PREFIX}/sub/config.json") == 2
    assert oct((root / PREFIX / "model.joblib").stat().st_mode & 0o777) == "0o644"


def test_file_store_missing_keys_are_file_not_found(files):
    files.put_bytes(f"{PREFIX}/sub/config.json", b"{}")
    for key in (f"{PREFIX}/nothing", f"{PREFIX}/sub", f"{PREFIX}/sub/config.json/deeper"):
        with pytest.raises(FileNotFoundError):
            files.open(key)
        with pytest.raises(FileNotFoundError):
            files.size(key)


def test_file_store_put_replaces_whole_or_not_at_all(files, root, tmp_path, monkeypatch):
    files.put_bytes(f"{PREFIX}/model.joblib", b"old")
    reader = files.open(f"{PREFIX}/model.joblib")

    def copy_half(source, target, length=0):
        target.write(source.read(3))
        raise OSError("disk full")

    source = tmp_path / "new.joblib"
    source.write_bytes(b"new weights")
    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(store_module.shutil, "copyfileobj", copy_half)
        files.put_file(f"{PREFIX}/model.joblib", source)
    assert (root / PREFIX / "model.joblib").read_bytes() == b"old"
    assert every_file(root / PREFIX) == ["model.joblib"]  # no partial file left behind

    files.put_file(f"{PREFIX}/model.joblib", source)
    with files.open(f"{PREFIX}/model.joblib") as handle:
        assert handle.read() == b"new weights"
    assert reader.read() == b"old"  # a reader that had the old file keeps it whole
    reader.close()
    assert every_file(root / PREFIX) == ["model.joblib"]


def test_file_store_list_is_sorted_and_stops_at_the_prefix(files, root):
    for key in ("b.bin", "a/z.txt", "a/b.txt"):
        files.put_bytes(f"{PREFIX}/{key}", b"x")
    files.put_bytes("models/vision/iris/10/model.joblib", b"x")
    (root / PREFIX / f"{store_module.PARTIAL}abc").write_bytes(b"being written")

    assert files.list(PREFIX) == [f"{PREFIX}/a/b.txt", f"{PREFIX}/a/z.txt", f"{PREFIX}/b.bin"]
    assert files.list("models/vision/iris/2") == []
    assert files.list("models/vision/iris") == [
        f"{PREFIX}/a/b.txt",
        f"{PREFIX}/a/z.txt",
        f"{PREFIX}/b.bin",
        "models/vision/iris/10/model.joblib",
    ]


def test_file_store_delete_prefix_removes_only_that_version(files):
    files.put_bytes(f"{PREFIX}/a/b.txt", b"x")
    files.put_bytes("models/vision/iris/10/model.joblib", b"x")

    files.delete_prefix(PREFIX)
    files.delete_prefix(PREFIX)  # absent is fine
    files.delete_prefix("models/nobody/nothing/1")

    assert files.list(PREFIX) == []
    assert files.list("models/vision/iris") == ["models/vision/iris/10/model.joblib"]


def test_file_store_local_dir_and_uri_are_its_own_folder(files, root):
    files.put_bytes(f"{PREFIX}/sub/config.json", b"{}")
    assert files.local_dir(PREFIX) == root / PREFIX
    assert (files.local_dir(PREFIX) / "sub" / "config.json").read_bytes() == b"{}"
    assert files.uri(PREFIX) == PREFIX


# --- choosing the store -----------------------------------------------------------------------------------


def test_model_store_is_made_once_per_configuration(settings, tmp_path):
    first = model_store()
    assert model_store() is first and isinstance(first, FileStore)
    settings.EASYAI_STORAGE_ROOT = tmp_path / "elsewhere"
    assert model_store() is not first and model_store().root == tmp_path / "elsewhere"
    settings.EASYAI_MODEL_STORE = "s3://bucket/pre"
    assert isinstance(model_store(), S3Store) and model_store().scheme == "s3"


@pytest.mark.parametrize(
    "url", ["gs://bucket/x", "/var/models", "s3://", "s3:///models", "s3://bucket/a/../b", "s3://b/x?y=1"]
)
def test_model_store_refuses_what_it_cannot_use(settings, url):
    settings.EASYAI_MODEL_STORE = url
    with pytest.raises(ImproperlyConfigured):
        model_store()


# --- the S3 store, against moto's S3 server on loopback ---------------------------------------------------


def calls(client, operation: str = "") -> list[dict]:
    """The parameters of each request (of one operation, or all) the client makes from now on."""
    seen: list[dict] = []
    event = f"before-parameter-build.s3.{operation}" if operation else "before-parameter-build.s3"
    client.meta.events.register(event, lambda params, **kwargs: seen.append(params))
    return seen


def test_s3_round_trip_under_the_key_prefix(s3):
    s3.put_bytes(f"{PREFIX}/config.json", b'{"a": 1}')

    with s3.open(f"{PREFIX}/config.json") as handle:
        assert handle.read(3) == b'{"a'
        assert handle.read() == b'": 1}'
    assert handle.closed
    assert s3.size(f"{PREFIX}/config.json") == 8
    stored = s3.raw.get_object(Bucket=s3.bucket, Key=f"pre/{PREFIX}/config.json")["Body"].read()
    assert stored == b'{"a": 1}'


def test_s3_missing_keys_are_file_not_found(s3):
    with pytest.raises(FileNotFoundError):
        s3.open(f"{PREFIX}/nothing")
    with pytest.raises(FileNotFoundError):
        s3.size(f"{PREFIX}/nothing")


def test_s3_refuses_bad_keys_before_any_request(s3):
    requests = calls(s3.client)
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            s3.put_bytes(key, b"x")
        with pytest.raises(ValueError):
            s3.list(key)
    assert requests == []


def test_s3_big_file_goes_in_parts_and_comes_back_whole(s3, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(12 * 2**20))  # over boto3's 8 MiB multipart threshold

    s3.put_file(f"{PREFIX}/model.bin", source)

    head = s3.raw.head_object(Bucket=s3.bucket, Key=f"pre/{PREFIX}/model.bin")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload's ETag names its parts
    assert s3.size(f"{PREFIX}/model.bin") == 12 * 2**20
    with s3.open(f"{PREFIX}/model.bin") as handle:
        assert handle.read() == source.read_bytes()


def test_s3_list_is_sorted_paged_and_stops_at_the_prefix(s3):
    for name in ("e", "d", "c/b", "c/a", "b"):
        s3.put_bytes(f"{PREFIX}/{name}", b"x")
    s3.put_bytes("models/vision/iris/10/model.joblib", b"x")
    s3.raw.put_object(Bucket=s3.bucket, Key=f"pre/{PREFIX}/folder/", Body=b"")  # a folder marker, not a file
    s3.page_size = 2
    pages = calls(s3.client, "ListObjectsV2")

    assert s3.list(PREFIX) == [f"{PREFIX}/{name}" for name in ("b", "c/a", "c/b", "d", "e")]
    assert len(pages) == 3 and all(page["MaxKeys"] == 2 for page in pages)
    assert s3.list("models/vision/iris/2") == []


def test_s3_delete_prefix_in_batches_removes_only_that_version(s3):
    for number in range(5):
        s3.put_bytes(f"{PREFIX}/part-{number}", b"x")
    s3.put_bytes("models/vision/iris/10/model.joblib", b"x")
    s3.page_size = 2
    deletes = calls(s3.client, "DeleteObjects")

    s3.delete_prefix(PREFIX)
    s3.delete_prefix(PREFIX)  # absent is fine

    assert [len(batch["Delete"]["Objects"]) for batch in deletes] == [2, 2, 1]
    assert s3.list(PREFIX) == []
    assert s3.list("models/vision/iris") == ["models/vision/iris/10/model.joblib"]


def test_s3_local_dir_downloads_into_the_storage_root_once(s3, root):
    s3.put_bytes(f"{PREFIX}/model.joblib", b"weights")
    s3.put_bytes(f"{PREFIX}/sub/config.json", b"{}")
    s3.put_bytes("models/vision/iris/10/model.joblib", b"not this one")
    downloads = calls(s3.client, "GetObject")

    folder = s3.local_dir(PREFIX)

    assert folder == root / PREFIX
    assert every_file(folder) == ["model.joblib", "sub/config.json"]
    assert (folder / "model.joblib").read_bytes() == b"weights"
    assert oct((folder / "model.joblib").stat().st_mode & 0o777) == "0o644"
    assert len(downloads) == 2

    (folder / "sub" / "config.json").write_bytes(b"{ }")  # another size: fetched again
    assert s3.local_dir(PREFIX) == folder
    assert [d["Key"] for d in downloads[2:]] == [f"pre/{PREFIX}/sub/config.json"]
    assert (folder / "sub" / "config.json").read_bytes() == b"{}"

    assert s3.local_dir(PREFIX) == folder
    assert len(downloads) == 3  # everything there already: nothing fetched
    assert every_file(root) == ["models/vision/iris/1/model.joblib", "models/vision/iris/1/sub/config.json"]


def test_s3_local_dir_refuses_a_bad_key_found_in_the_bucket(s3, root):
    s3.raw.put_object(Bucket=s3.bucket, Key=f"pre/{PREFIX}/a//b", Body=b"x")
    with pytest.raises(ValueError):
        s3.local_dir(PREFIX)
    assert every_file(root.parent) == []


def test_s3_uri_names_the_version_folder(s3, settings):
    assert s3.uri(PREFIX) == f"s3://{s3.bucket}/pre/{PREFIX}/"
    settings.EASYAI_MODEL_STORE = f"s3://{s3.bucket}"
    bare = model_store()
    assert bare.uri(PREFIX) == f"s3://{s3.bucket}/{PREFIX}/"
    bare.put_bytes(f"{PREFIX}/model.joblib", b"x")
    assert s3.raw.head_object(Bucket=s3.bucket, Key=f"{PREFIX}/model.joblib")["ContentLength"] == 1
