"""The model registry's storage: the filesystem under the storage root, or an S3-compatible object store.

Keys are relative POSIX paths, ``models/{team}/{model}/{version}/{file}`` (``version_prefix``). The model's name
and its files' paths come from users, so every key is checked (``check_key``): never absolute, no ``.`` or ``..``
part, no empty part. ``EASYAI_MODEL_STORE`` chooses the store: empty, the file store (the key
``models/t/m/1/model.joblib`` is the file ``{EASYAI_STORAGE_ROOT}/models/t/m/1/model.joblib``); ``s3://bucket/prefix``,
the object store (AWS S3, or MinIO and Ceph RGW through ``EASYAI_S3_ENDPOINT_URL``; credentials from boto3's own
environment: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).

How a model server reads a version's files:

- A local revision (the local backend, on this host) reads ``local_dir(prefix)``: the file store's own folder, or,
  for the object store, the same place under the storage root, where the files are downloaded (only those missing
  or of another size) before the revision starts.
- A KServe InferenceService on Kubernetes reads ``uri(prefix)`` as its ``storageUri``: ``s3://bucket/…/`` with the
  credentials in a secret that the predictor's service account references (KServe's storage initializer
  downloads the files into the model server's pod); the file store's relative prefix is a path on the shared
  storage claim (``pvc://{claim}/{prefix}``).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# A file being written is named so; list() never shows one and no key may name one.
PARTIAL = ".easyai-partial-"
# S3 answers at most 1,000 keys a page and deletes at most 1,000 keys a request.
S3_BATCH = 1000


def check_key(key: str) -> str:
    """The key as given, or ValueError: relative, no '.', '..' or empty part, no backslash or control character."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"not a key: {key!r}")
    if key.startswith("/") or "\\" in key:
        raise ValueError(f"not a relative POSIX key: {key!r}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise ValueError(f"a control character in the key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"an empty, '.' or '..' part in the key {key!r}")
    if any(part.startswith(PARTIAL) for part in parts):
        raise ValueError(f"the key {key!r} names one of the store's partial files")
    return key


def version_prefix(team: str, model: str, version: int) -> str:
    """The key prefix of a model version's files: ``models/{team}/{model}/{version}``."""
    for name in (team, model):
        if not isinstance(name, str) or "/" in name:
            raise ValueError(f"not a single key part: {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"not a version number: {version!r}")
    return check_key(f"models/{team}/{model}/{version}")


class ModelStore(Protocol):
    scheme: str  # "file" or "s3"

    def put_file(self, key: str, source: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def local_dir(self, prefix: str) -> Path: ...

    def uri(self, prefix: str) -> str: ...


def _path_under(root: Path, key: str) -> Path:
    return root.joinpath(*check_key(key).split("/"))


def _write_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a partial file beside ``target``, then rename it over ``target``: a reader sees the old file or the
    whole new one, never half of it, and a failed write leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL)
    os.close(fd)
    partial = Path(name)
    try:
        fill(partial)
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())  # the rename must not reach the disk before the data does
        # mkstemp makes the file private; a model server may run as another user (the local backend's sandbox).
        partial.chmod(0o644)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class FileStore:
    scheme = "file"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return _path_under(self.root, key)

    def put_file(self, key: str, source: Path) -> None:
        def fill(partial: Path) -> None:
            with open(source, "rb") as reader, open(partial, "wb") as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)

        _write_atomically(self.path(key), fill)

    def put_bytes(self, key: str, data: bytes) -> None:
        _write_atomically(self.path(key), lambda partial: partial.write_bytes(data))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def size(self, key: str) -> int:
        try:
            found = self.path(key).stat()
        except NotADirectoryError:
            raise FileNotFoundError(key) from None
        if not stat.S_ISREG(found.st_mode):
            raise FileNotFoundError(key)
        return found.st_size

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        keys = []
        for dirpath, _dirnames, filenames in os.walk(folder):
            for name in filenames:
                if not name.startswith(PARTIAL):
                    keys.append((Path(dirpath) / name).relative_to(self.root).as_posix())
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        try:
            shutil.rmtree(self.path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            pass  # nothing under it

    def local_dir(self, prefix: str) -> Path:
        return self.path(prefix)

    def uri(self, prefix: str) -> str:
        return check_key(prefix)


class S3Body(io.RawIOBase):
    """An S3 object's streaming body as a binary file: read(), close(), a context manager; it does not seek."""

    def __init__(self, body) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def readall(self) -> bytes:
        return self._body.read()

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Store:
    scheme = "s3"
    page_size = S3_BATCH  # keys a list request asks for; the tests ask for fewer to see the pages

    def __init__(self, url: str, endpoint_url: str = "") -> None:
        parts = urlsplit(url)
        base = parts.path.strip("/")
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ImproperlyConfigured(f"EASYAI_MODEL_STORE={url!r}: use s3://bucket or s3://bucket/prefix")
        if base:
            try:
                check_key(base)
            except ValueError as exc:
                raise ImproperlyConfigured(f"EASYAI_MODEL_STORE={url!r}: {exc}") from None
        self.bucket = parts.netloc
        self.key_prefix = f"{base}/" if base else ""
        self.endpoint_url = endpoint_url or None
        self._client = None

    @property
    def client(self):
        # A client is thread-safe, a boto3 session is not: clients are made one at a time, from one session that
        # keeps the service descriptions it has read (a quarter of a second each time otherwise).
        with _SESSION_LOCK:
            if self._client is None:
                from botocore.config import Config

                options: dict = {}
                if self.endpoint_url:
                    # MinIO and Ceph RGW: buckets in the path, not the host name; and no checksums beyond those
                    # S3 requires (since boto3 1.36 the default sends CRC32 headers that some of them refuse).
                    options = {
                        "s3": {"addressing_style": "path"},
                        "request_checksum_calculation": "when_required",
                        "response_checksum_validation": "when_required",
                    }
                self._client = _boto3_session().client("s3", endpoint_url=self.endpoint_url, config=Config(**options))
            return self._client

    def object_key(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    @staticmethod
    def _missing(exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put_file(self, key: str, source: Path) -> None:
        # upload_file sends a big file in parts (multipart upload); the object appears whole, once, at the end.
        self.client.upload_file(str(source), self.bucket, self.object_key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise
        return cast(BinaryIO, S3Body(answer["Body"]))

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise
        return int(answer["ContentLength"])

    def _pages(self, prefix: str) -> Iterator[list[dict]]:
        """The objects under ``prefix/``, a page at a time (the trailing slash keeps version 1 from matching 10)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.object_key(prefix) + "/",
            PaginationConfig={"PageSize": self.page_size},
        )
        for page in pages:
            # A key ending in '/' is a folder marker some tools make, not a file.
            yield [item for item in page.get("Contents", []) if not item["Key"].endswith("/")]

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.key_prefix) :]

    def list(self, prefix: str) -> list[str]:
        return sorted(self._relative(item["Key"]) for page in self._pages(prefix) for item in page)

    def delete_prefix(self, prefix: str) -> None:
        # A page holds at most 1,000 keys, as many as one DeleteObjects request takes. Deleting keys already
        # listed does not disturb the listing's continuation.
        for page in self._pages(prefix):
            if not page:
                continue
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": item["Key"]} for item in page], "Quiet": True},
            )
            if errors := answer.get("Errors"):
                first = errors[0]
                raise OSError(
                    f"{len(errors)} keys under {prefix!r} not deleted, {first.get('Key')!r}: {first.get('Message')}"
                )

    def local_dir(self, prefix: str) -> Path:
        root = Path(settings.EASYAI_STORAGE_ROOT)
        folder = _path_under(root, prefix)
        for page in self._pages(prefix):
            for item in page:
                # A key in the bucket that is not a proper key refuses here, before anything is written outside.
                target = _path_under(root, self._relative(item["Key"]))
                if target.is_file() and target.stat().st_size == int(item["Size"]):
                    continue
                _write_atomically(
                    target, lambda partial, name=item["Key"]: self.client.download_file(self.bucket, name, str(partial))
                )
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def uri(self, prefix: str) -> str:
        # The trailing slash matters: KServe's storage initializer downloads every object whose key starts with
        # the URI's path, so without it version 1 would bring versions 10 to 19 along.
        return f"s3://{self.bucket}/{self.object_key(prefix)}/"


_SESSION_LOCK = threading.Lock()


@functools.cache
def _boto3_session():
    import boto3

    return boto3.session.Session()


@functools.cache
def _store(url: str, endpoint_url: str, root: str) -> ModelStore:
    if url.startswith("s3:"):
        return S3Store(url, endpoint_url)
    if url:
        raise ImproperlyConfigured(
            f"EASYAI_MODEL_STORE={url!r}: leave it empty (the storage root) or use s3://bucket/prefix"
        )
    return FileStore(Path(root))


def model_store() -> ModelStore:
    """The store the settings name, made once per process (a test that changes the settings gets another)."""
    return _store(settings.EASYAI_MODEL_STORE, settings.EASYAI_S3_ENDPOINT_URL, str(settings.EASYAI_STORAGE_ROOT))


def reset_model_store() -> None:
    """Forget the stores made so far, and the credentials read (tests that change them in the environment)."""
    with _SESSION_LOCK:
        _store.cache_clear()
        _boto3_session.cache_clear()
