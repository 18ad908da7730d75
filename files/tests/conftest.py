"""Helpers for the files tests: the storage root (read at call time) and a folder outside it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from jobs.models import Job, Task


def storage_root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


def workspace(username: str) -> Path:
    return storage_root() / "notebook" / username


def files_url(space: str, path: str = "") -> str:
    return f"/api/v1/files/{space}/{quote(path)}"


def body(response) -> bytes:
    # The test client closes a streamed response once its content is consumed.
    return b"".join(response.streaming_content) if response.streaming else response.content


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every path under the roots (links not followed) with the bytes of its files: to prove nothing changed."""
    result: dict[str, bytes | None] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                result[str(path)] = f"-> {path.readlink()}".encode()
            elif path.is_file():
                result[str(path)] = path.read_bytes()
            else:
                result[str(path)] = None
    return result


ALL_BYTES = bytes(range(256)) * 64 + b"\x00\r\n\x1a\xff" + bytes(range(255, -1, -1))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the storage root, with a secret in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


@pytest.fixture
def job(owner, team, fake_backend) -> Job:
    job = Job.objects.create(
        name="resnet", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}
    )
    Task.objects.create(job=job, role="master", index=0)
    Task.objects.create(job=job, role="worker", index=0)
    root = storage_root()
    model = storage.output_dir(root, job.public_id, "model_dir")
    (model / "checkpoints").mkdir(parents=True)
    (model / "model.bin").write_bytes(ALL_BYTES)
    (model / "checkpoints" / "step-1.pt").write_bytes(b"step one")
    (model / "empty").mkdir()
    for task in ("master-0", "worker-0"):
        summary = storage.output_dir(root, job.public_id, "summary_dir", task)
        summary.mkdir(parents=True)
        (summary / "events.out").write_text(f"events of {task}")
    storage.task_log_path(root, job.public_id, "master-0").parent.mkdir(parents=True)
    storage.task_log_path(root, job.public_id, "master-0").write_text("epoch 1\n")
    return job
