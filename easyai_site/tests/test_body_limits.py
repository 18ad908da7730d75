"""Request bodies past their route's limit are refused (413) before they are read, through a real ASGI server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings

from conftest import api_client_for
from easyai_site.limits import MULTIPART_ALLOWANCE
from jobs.models import Job

LIMIT = 64 * 1024


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.EASYAI_MAX_BODY_BYTES = LIMIT
    settings.EASYAI_UPLOAD_MAX_BYTES = 4 * LIMIT


def exchange(server, head: str, body_parts: list[bytes], timeout: float = 10.0) -> tuple[int, bytes, float]:
    """Send a request's head and then body parts (stopping once the server answers): status, answer, seconds."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in body_parts:
            try:
                conn.sendall(part)
            except OSError:
                break  # the server closed: it did not want the rest
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, time.monotonic() - started


def test_a_huge_declared_body_is_refused_at_once_without_being_read(asgi_server):
    # 10 GiB announced to the sign-in page, anonymously; only a few bytes ever follow.
    head = "POST /accounts/login/ HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/x-www-form-urlencoded\n"
    head += f"Content-Length: {10 * 2**30}\n"
    status, answer, seconds = exchange(asgi_server, head, [b"username=a&pass"])
    assert status == 413, answer
    assert b"connection: close" in answer.lower()
    assert seconds < 5  # answered without waiting for the body (which never comes)


def test_the_api_refuses_a_spec_above_its_limit_and_records_nothing(asgi_server, owner, fake_backend):
    token = api_client_for(owner)._credentials["HTTP_AUTHORIZATION"]
    head = f"POST /api/v1/jobs/ HTTP/1.1\nHost: 127.0.0.1\nAuthorization: {token}\nContent-Type: application/json\n"
    status, answer, _ = exchange(asgi_server, head + f"Content-Length: {LIMIT + 1}\n", [b"{"])
    assert status == 413, answer
    assert not Job.objects.exists()


def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(asgi_server, owner, fake_backend):
    token = api_client_for(owner)._credentials["HTTP_AUTHORIZATION"]
    head = f"POST /api/v1/jobs/ HTTP/1.1\nHost: 127.0.0.1\nAuthorization: {token}\nContent-Type: application/json\n"
    head += "Transfer-Encoding: chunked\n"
    piece = b" " * 16384
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # Twice the limit in chunks, and the body never ends: the answer cannot wait for its end.
    status, answer, seconds = exchange(asgi_server, head, [chunk] * (2 * LIMIT // len(piece)))
    assert status == 413, answer
    assert seconds < 5
    assert not Job.objects.exists()


def test_uploads_have_their_own_larger_limit(asgi_server, owner):
    token = api_client_for(owner)._credentials["HTTP_AUTHORIZATION"]
    data = b"x" * (2 * LIMIT)  # above the general limit, below the upload limit
    head = f"PUT /api/v1/files/personal/model.bin HTTP/1.1\nHost: 127.0.0.1\nAuthorization: {token}\n"
    head += f"Content-Type: application/octet-stream\nContent-Length: {len(data)}\nConnection: close\n"
    status, answer, _ = exchange(asgi_server, head, [data])
    assert status == 201, answer

    too_large = 4 * LIMIT + MULTIPART_ALLOWANCE + 1
    head = head.replace(f"Content-Length: {len(data)}", f"Content-Length: {too_large}")
    status, answer, _ = exchange(asgi_server, head, [b"x" * 10])
    assert status == 413, answer


# --- daphne (what `serve` runs): it reads whole bodies before the application is called ----------------------


class DaphneServer:
    port: int


@pytest.fixture
def daphne_server(tmp_path):
    """The real daphne in a process of its own, as `serve` starts it, with a 64 KiB body limit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "easyai_site.settings",
        "EASYAI_VAR_DIR": str(tmp_path / "var"),
        "EASYAI_MAX_BODY_BYTES": str(LIMIT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "easyai_site.asgi:application"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = DaphneServer()
    server.port = port
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not start"
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_daphne_refuses_a_huge_body_as_its_headers_arrive(daphne_server):
    head = "POST /accounts/login/ HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/x-www-form-urlencoded\n"
    status, answer, seconds = exchange(daphne_server, head + f"Content-Length: {10 * 2**30}\n", [b"username=a"])
    assert status == 413, answer
    assert seconds < 5

    chunked = head + "Transfer-Encoding: chunked\n"
    piece = b"a" * 16384
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, answer, seconds = exchange(daphne_server, chunked, [chunk] * (2 * LIMIT // len(piece)))
    assert status == 413, answer
    assert seconds < 5

    # A body within the limit reaches the portal (which wants a CSRF token here).
    status, answer, _ = exchange(daphne_server, head + "Content-Length: 10\nConnection: close\n", [b"username=a"])
    assert status == 403, answer
