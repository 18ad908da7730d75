"""`easyai upload` of large files: resumable chunks against a real portal (pytest-django's live server over HTTP)."""

from __future__ import annotations

import functools
import hashlib
import io
import random
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from easyai_cli import config as cli_config
from easyai_cli import uploads as cli_uploads
from easyai_cli.main import main
from easyai_cli.progress import Progress

from clusters.backends.contract import storage
from conftest import token_key_for
from files import uploads as portal_uploads
from files.models import Upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MiB = 2**20
SEND_CHUNK = cli_uploads.send_chunk


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def run(*argv: str) -> Result:
    """main(argv) in this process with its own stdout and stderr (neither a terminal)."""
    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2)]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    finally:
        for stream in streams:
            stream.flush()
        sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams)
    return Result(code, out, err)


@pytest.fixture
def config_dir(owner, live_server, tmp_path, monkeypatch) -> Path:
    """The owner logged in to the live portal, as `easyai login` leaves it; the portal suggests 1 MiB chunks."""
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM", "EASYAI_RESUMABLE_ABOVE"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "easyai-config"
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(directory))
    cache.clear()
    cli_config.save(cli_config.Config(url=live_server.url, token=token_key_for(owner), username="owner"))
    monkeypatch.setattr(portal_uploads, "CHUNK_SIZE", MiB)  # the live server runs in this process
    return directory


@pytest.fixture
def big(tmp_path) -> Path:
    path = tmp_path / "weights.bin"
    path.write_bytes(random.Random(20).randbytes(20 * MiB))
    return path


def workspace() -> Path:
    return storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), "owner")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kept_uploads(config_dir: Path) -> list[Path]:
    folder = config_dir / cli_uploads.STATE_FOLDER
    return sorted(folder.glob("*.json")) if folder.exists() else []


class Chunks:
    """send_chunk, recording each offset sent; it "kills" the CLI (Ctrl-C) before the chunk numbered ``stop``."""

    def __init__(self, monkeypatch, stop: int | None = None):
        self.offsets: list[int] = []
        self.stop = stop
        real = SEND_CHUNK

        @functools.wraps(real)
        def spy(portal, url, offset, data, progress):
            if self.stop is not None and len(self.offsets) == self.stop:
                raise KeyboardInterrupt
            self.offsets.append(offset)
            return real(portal, url, offset, data, progress)

        monkeypatch.setattr(cli_uploads, "send_chunk", spy)


def test_an_interrupted_upload_goes_on_from_the_portals_offset_with_resume(config_dir, big, monkeypatch):
    killed = Chunks(monkeypatch, stop=7)
    first = run("upload", str(big), "models/")
    assert first.code == 130, first
    assert killed.offsets == [n * MiB for n in range(7)]
    assert not (workspace() / "models" / "weights.bin").exists()
    assert len(kept_uploads(config_dir)) == 1
    assert Upload.objects.get().offset == 7 * MiB

    resumed = Chunks(monkeypatch)
    second = run("upload", str(big), "models/", "--resume", "--format", "json")
    assert second.code == 0, second
    assert resumed.offsets == [n * MiB for n in range(7, 20)]  # not a byte sent twice
    assert "resuming at 7340032 of 20971520 bytes" in second.err
    placed = workspace() / "models" / "weights.bin"
    assert sha256(placed) == sha256(big)
    assert '"path": "models/weights.bin"' in second.out
    assert kept_uploads(config_dir) == []
    assert Upload.objects.get().state == Upload.State.COMPLETE


def test_without_resume_an_interrupted_upload_starts_over_and_the_old_one_is_dropped(config_dir, big, monkeypatch):
    Chunks(monkeypatch, stop=3)
    assert run("upload", str(big)).code == 130
    old = Upload.objects.get()

    again = Chunks(monkeypatch)
    assert run("upload", str(big)).code == 0
    assert again.offsets[0] == 0 and len(again.offsets) == 20
    assert not Upload.objects.filter(pk=old.pk).exists()
    assert sha256(workspace() / "weights.bin") == sha256(big)


def test_a_file_changed_since_the_interruption_is_uploaded_anew(config_dir, big, monkeypatch):
    Chunks(monkeypatch, stop=3)
    assert run("upload", str(big)).code == 130
    big.write_bytes(random.Random(21).randbytes(12 * MiB))

    again = Chunks(monkeypatch)
    result = run("upload", str(big), "--resume")
    assert result.code == 0, result
    assert "changed since the interrupted upload" in result.err
    assert again.offsets[0] == 0
    assert sha256(workspace() / "weights.bin") == sha256(big)


def test_resume_when_the_portal_dropped_the_upload_starts_again(config_dir, big, monkeypatch):
    Chunks(monkeypatch, stop=2)
    assert run("upload", str(big)).code == 130
    Upload.objects.all().delete()  # as expiry does

    again = Chunks(monkeypatch)
    result = run("upload", str(big), "--resume")
    assert result.code == 0, result
    assert "gone from the portal" in result.err
    assert again.offsets[0] == 0
    assert sha256(workspace() / "weights.bin") == sha256(big)


def test_small_files_go_in_one_request_and_the_threshold_is_configurable(config_dir, tmp_path, monkeypatch):
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 5000)
    assert run("upload", str(small)).code == 0
    assert Upload.objects.count() == 0

    assert run("upload", str(small), "again.bin", "--resumable-above", "4096").code == 0
    assert Upload.objects.get().path == "again.bin"

    monkeypatch.setenv("EASYAI_RESUMABLE_ABOVE", "1000")
    assert run("upload", str(small), "third.bin").code == 0
    assert Upload.objects.count() == 2
    assert (workspace() / "third.bin").read_bytes() == b"x" * 5000


def test_the_progress_bar_follows_the_chunks(config_dir, big, monkeypatch):
    monkeypatch.setattr(cli_uploads, "Progress", functools.partial(Progress, enabled=True))
    result = run("upload", str(big))
    assert result.code == 0, result
    assert "weights.bin (sha256) [" in result.err
    assert "weights.bin [##############################] 100.0% 20.0 MiB/20.0 MiB" in result.err


def test_a_refused_chunk_is_one_line_that_says_how_to_resume(config_dir, big, monkeypatch):
    monkeypatch.setattr(cli_uploads, "RETRIES", 1)
    monkeypatch.setattr(cli_uploads, "_sha256", lambda local, label: "0" * 64)  # the portal will refuse it
    result = run("upload", str(big))
    assert result.code == 1
    assert "sha256" in result.err and "Traceback" not in result.err
    assert not (workspace() / "weights.bin").exists()


def test_a_lost_answer_is_retried_from_the_portals_offset_not_resent(config_dir, big, monkeypatch):
    sent: list[int] = []

    def answer_lost_once(portal, url, offset, data, progress):
        sent.append(offset)
        answer = SEND_CHUNK(portal, url, offset, data, progress)
        if offset == 4 * MiB and sent.count(offset) == 1:
            raise cli_uploads.UnreachableError(portal.url, "connection reset by peer")  # it arrived; the answer did not
        return answer

    monkeypatch.setattr(cli_uploads, "send_chunk", answer_lost_once)
    monkeypatch.setattr(cli_uploads, "pause", lambda seconds: None)
    result = run("upload", str(big))
    assert result.code == 0, result
    assert sent == [n * MiB for n in range(20)]
    assert sha256(workspace() / "weights.bin") == sha256(big)


def test_a_large_file_goes_into_the_data_space_in_chunks_too(config_dir, big):
    result = run("upload", str(big), "train/", "--to", "data")
    assert result.code == 0, result
    placed = Path(settings.EASYAI_STORAGE_ROOT) / "data" / "owner" / "train" / "weights.bin"
    assert sha256(placed) == sha256(big)
    assert Upload.objects.get().space == "data"
