"""The tools image (clusters/backends/kubernetes/tools-image/): its Dockerfile checked statically, and what it
builds made natively on this Debian host and used for real: easyai-inetd compiled and run, the tools folder
(Dropbear with its own loader and libraries, libnss_wrapper preloaded) made by the same make-tools.sh, and real
``ssh`` and ``scp`` clients through ``easyai-inetd busybox sh easyai-sshd``.

There is no Docker here: what needs gcc, Dropbear, libnss_wrapper or the OpenSSH client is skipped, saying so,
where they are missing (CI installs them)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clusters.backends.contract import toolbox
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.manifests import toolbox as pod_tools
from clusters.backends.local import tools as local_tools

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "clusters" / "backends" / "kubernetes" / "tools-image"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _lacking(*programs: str, toolbox_parts: bool = False) -> str:
    lacking = [name for name in programs if shutil.which(name, path=SBIN_PATH) is None]
    if toolbox_parts:
        lacking += local_tools.missing()
    return ", ".join(lacking)


def needs(*programs: str, toolbox_parts: bool = False) -> pytest.MarkDecorator:
    lacking = _lacking(*programs, toolbox_parts=toolbox_parts)
    return pytest.mark.skipif(bool(lacking), reason=f"needs {lacking} on this host (CI installs them)")


# --- the Dockerfile, statically ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (IMAGE / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def test_the_dockerfile_builds_from_debian_bookworm_slim_in_two_stages():
    froms = [rest for instruction, rest in dockerfile_instructions() if instruction == "FROM"]
    assert froms == ["debian:bookworm-slim AS build", "scratch"]
    (install,) = [rest for instruction, rest in dockerfile_instructions() if instruction == "RUN" and "apt-get" in rest]
    for package in ("busybox-static", "dropbear-bin", "libnss-wrapper", "gcc", "libc6-dev", "python3"):
        assert f" {package} " in f" {install} "


def test_every_file_the_dockerfile_copies_is_in_the_repository_and_sent_in_its_context():
    ignore = (IMAGE / "Dockerfile.dockerignore").read_text().splitlines()
    sent = {line[1:] for line in ignore if line.startswith("!")}
    copied = []
    for instruction, rest in dockerfile_instructions():
        if instruction == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            copied += sources
    assert copied
    for source in copied:
        assert (REPO / source).is_file(), source
        assert source in sent, f"{source} is not in Dockerfile.dockerignore's context"
    assert "*" in ignore  # and nothing else of the repository is sent


def test_the_images_entrypoint_is_the_init_containers_copy():
    instructions = dict(dockerfile_instructions()[-3:])
    import json

    assert json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"]) == pod_tools.INIT_COMMAND
    assert pod_tools.INIT_COMMAND[0] == f"{pod_tools.TOOLS_IN_IMAGE}/busybox"
    assert m.DEFAULT_TOOLS_IMAGE == "easyai/tools:1"


def test_the_scripts_the_image_gets_are_the_toolbox_scripts(tmp_path):
    # write-scripts.py runs in the image's build stage with Debian's python3: nothing but the standard library.
    subprocess.run([sys.executable, "-I", str(IMAGE / "write-scripts.py"),
                    str(REPO / "clusters/backends/contract/toolbox.py"), str(tmp_path)], check=True)  # fmt: skip
    written = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert written == {name: "#!/bin/sh\n" + text for name, text in toolbox.SCRIPTS.items()}
    assert all((tmp_path / name).stat().st_mode & 0o755 == 0o755 for name in written)


def test_make_tools_refuses_without_its_arguments(tmp_path):
    ran = subprocess.run(["sh", str(IMAGE / "make-tools.sh")], capture_output=True, text=True)
    assert ran.returncode != 0 and "usage: make-tools.sh DEST INETD" in ran.stderr


# --- easyai-inetd -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inetd(tmp_path_factory) -> Path:
    if _lacking("gcc"):
        pytest.skip("needs gcc on this host (CI installs it)")
    return compile_inetd(tmp_path_factory.mktemp("inetd"))


def compile_inetd(folder: Path) -> Path:
    """easyai-inetd, built as the image builds it (static, every warning an error)."""
    binary = folder / "easyai-inetd"
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary),
                    str(IMAGE / "easyai-inetd.c")], check=True)  # fmt: skip
    return binary


def test_easyai_inetd_is_static(inetd):
    ran = subprocess.run(["ldd", str(inetd)], capture_output=True, text=True)
    assert "not a dynamic executable" in ran.stdout + ran.stderr


def test_easyai_inetd_gives_the_program_a_socket_and_copies_both_ways(inetd):
    probe = (
        "import os, socket, stat, sys\n"
        "assert stat.S_ISSOCK(os.fstat(0).st_mode) and stat.S_ISSOCK(os.fstat(1).st_mode)\n"
        "data = sys.stdin.buffer.read()\n"  # to the end of input: the half-close of the socket
        "sys.stdout.buffer.write(b'got %d bytes: ' % len(data) + data[:5] + data[-5:])\n"
        "sys.stderr.write('stderr stays stderr\\n')\n"
        "sys.exit(7)\n"
    )
    data = bytes(range(256)) * 20000  # 5 MB, every byte value
    ran = subprocess.run([str(inetd), sys.executable, "-c", probe], input=data, capture_output=True, timeout=60)
    assert ran.returncode == 7
    assert ran.stdout == b"got 5120000 bytes: " + data[:5] + data[-5:]
    assert ran.stderr == b"stderr stays stderr\n"


def test_easyai_inetd_copies_large_output_while_input_flows(inetd):
    data = bytes(range(256)) * 40000  # 10 MB through a program that answers as it reads
    ran = subprocess.run([str(inetd), "cat"], input=data, capture_output=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout == data


def test_easyai_inetd_ends_when_the_program_does_even_if_its_input_does_not(inetd):
    # The exec API's stdin has no end while the session lasts: the program's exit is what ends it.
    with subprocess.Popen([str(inetd), "sh", "-c", "echo bye; exit 4"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as process:  # fmt: skip
        assert process.stdout is not None and process.stdout.read() == b"bye\n"
        assert process.wait(timeout=30) == 4
        assert process.stdin is not None
        process.stdin.close()


def test_easyai_inetd_reports_a_signal_and_a_missing_program(inetd):
    assert subprocess.run([str(inetd), "sh", "-c", "kill -TERM $$"], timeout=30).returncode == 128 + 15
    ran = subprocess.run([str(inetd), "/no/such/program"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 127 and "/no/such/program" in ran.stderr
    usage = subprocess.run([str(inetd)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage" in usage.stderr


# --- real SSH through easyai-inetd ------------------------------------------------------------------------


def ssh_options(key: Path, port: int | None = None, proxy: str = "", scp: bool = False) -> list[str]:
    """An ssh/scp client that knows nothing of this host's configuration: one key, no host key checks (the
    task's host key is made for it), the connection through the proxy command or to a local port."""
    options = [
        "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=30",
    ]  # fmt: skip
    if proxy:
        options += ["-o", f"ProxyCommand={proxy}"]
    if port is not None:
        options += ["-P" if scp else "-p", str(port), "-o", "HostKeyAlias=task"]
    return options


def make_key(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def proxy_script(folder: Path, tools_dir: Path, keys: list[str]) -> str:
    """The ProxyCommand: what open_ssh runs in a pod, ``easyai-inetd busybox sh easyai-sshd``, here on this host
    with a bare environment (as an exec gets), the allowed keys in EASYAI_SSH_KEYS."""
    script = folder / "proxy.sh"
    keys_file = folder / "keys"
    keys_file.write_text("\n".join(keys))
    script.write_text(
        "#!/bin/sh\n"
        f'cd "{folder}" || exit 1\n'
        f'exec env -i PATH=/usr/bin:/bin HOME="{folder}" TMPDIR="{folder}" EASYAI_TOOLS="{tools_dir}" '
        f'EASYAI_SSH_KEYS="$(cat "{keys_file}")" "{tools_dir}/easyai-inetd" "{tools_dir}/busybox" sh '
        f'"{tools_dir}/easyai-sshd"\n'
    )
    script.chmod(0o755)
    return str(script)


def check_ssh_and_scp(folder: Path, tools_dir: Path) -> None:
    """A command runs over ssh with the tools on PATH, scp copies a file out, another key is refused."""
    key, stranger = folder / "id", folder / "stranger"
    public = make_key(key)
    make_key(stranger)
    (folder / "data.txt").write_text("weights 0.5\n")
    proxy = proxy_script(folder, tools_dir, [public])
    ran = subprocess.run(["ssh", *ssh_options(key, proxy=proxy), "easyai@task", "echo hello from $PWD; command -v nc"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [f"hello from {folder}", f"{tools_dir}/bin/nc"]
    copied = folder / "copied.txt"
    scp = subprocess.run(["scp", *ssh_options(key, proxy=proxy), "easyai@task:data.txt", str(copied)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert scp.returncode == 0, scp.stderr
    assert copied.read_text() == "weights 0.5\n"
    refused = subprocess.run(["ssh", *ssh_options(stranger, proxy=proxy), "easyai@task", "true"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0 and "Permission denied" in refused.stderr


@needs("ssh", "scp", "ssh-keygen", toolbox_parts=True)
def test_ssh_and_scp_through_easyai_inetd_with_the_local_tools_folder(inetd, tmp_path):
    tools_dir = local_tools.prepare(tmp_path / "tools")
    shutil.copy(inetd, tools_dir / "easyai-inetd")
    check_ssh_and_scp(tmp_path, tools_dir)


def build_tools(place: Path) -> Path:
    """The image's /tools made natively by make-tools.sh, as if copied to ``place``, with the scripts."""
    place.parent.mkdir(parents=True, exist_ok=True)
    inetd = compile_inetd(place.parent)
    subprocess.run(["sh", str(IMAGE / "make-tools.sh"), str(place), str(inetd), str(place)], check=True)
    subprocess.run([sys.executable, "-I", str(IMAGE / "write-scripts.py"),
                    str(REPO / "clusters/backends/contract/toolbox.py"), str(place)], check=True)  # fmt: skip
    return place


@needs("gcc", "ldd", "ssh", "scp", "ssh-keygen", toolbox_parts=True)
def test_the_image_layout_made_natively_serves_ssh_with_its_own_loader(tmp_path):
    place = build_tools(tmp_path / "tools")
    lib = place / "lib"
    assert (lib / "libnss_wrapper.so").is_file() and (lib / "dropbear").is_file() and (lib / "dropbearkey").is_file()
    loaders = sorted(path.name for path in lib.glob("ld-linux*.so*"))
    assert len(loaders) == 1
    # Every library the bundled programs ask for is in lib/: they run without the image's C library.
    for program in ("dropbear", "dropbearkey", "libnss_wrapper.so"):
        for line in subprocess.run(["ldd", str(lib / program)], capture_output=True, text=True).stdout.splitlines():
            name = line.split()[0]
            if "=>" in line:
                assert (lib / name).is_file(), f"{program} needs {name}"
    script = (place / "dropbear").read_text()
    assert script.splitlines() == [
        f"#!{place}/busybox sh",
        f'exec "{lib}/{loaders[0]}" --library-path "{lib}" --preload "{lib}/libnss_wrapper.so" "{lib}/dropbear" "$@"',
    ]
    assert "--preload" not in (place / "dropbearkey").read_text()
    assert (place / "bin" / "ping").resolve() == (place / "busybox").resolve()
    assert {name: (place / name).read_text() for name in toolbox.SCRIPTS} == {
        name: "#!/bin/sh\n" + text for name, text in toolbox.SCRIPTS.items()
    }
    # The programs are the folder's, not this host's: nothing on PATH is asked for them.
    version = subprocess.run([str(place / "dropbear"), "-V"], capture_output=True, text=True, env={"PATH": ""})
    assert "Dropbear" in version.stderr + version.stdout
    check_ssh_and_scp(tmp_path, place)


@needs("gcc", "ldd", toolbox_parts=True)
def test_the_init_containers_copy_keeps_the_layout(tmp_path):
    """The init container's command (the image's busybox cp) copies links as links and keeps the modes."""
    source = build_tools(tmp_path / "image" / "tools")
    target = tmp_path / "pod" / "easyai" / "tools"
    target.mkdir(parents=True)
    places = {"/tools/busybox": f"{source}/busybox", "/tools/.": f"{source}/.", "/easyai/tools/": f"{target}/"}
    command = [places.get(arg, arg) for arg in pod_tools.INIT_COMMAND]
    assert command[1:3] == ["cp", "-R"]
    assert command[0] == f"{source}/busybox"
    subprocess.run(command, check=True)
    assert (target / "bin" / "vi").is_symlink() and (target / "bin" / "vi").resolve() == target / "busybox"
    for name in ("busybox", "dropbear", "easyai-inetd", "easyai-sshd", "lib/dropbear"):
        assert (target / name).stat().st_mode & 0o755 == 0o755
    assert sorted(p.name for p in target.rglob("*")) == sorted(p.name for p in source.rglob("*"))


# --- a TCP port in front of a session (for the exec path's SSH test) --------------------------------------


@contextlib.contextmanager
def ssh_tcp_bridge(open_session: Callable[[], Any]) -> Iterator[int]:
    """A local port whose every connection is a new session from ``open_session`` (a StreamSession), its bytes
    copied both ways: ssh connects to it as to a server."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stopping = threading.Event()

    def relay(conn: socket.socket) -> None:
        session = open_session()

        def upward() -> None:
            try:
                while data := conn.recv(65536):
                    session.write(data)
            except OSError:
                pass
            session.close()

        threading.Thread(target=upward, daemon=True).start()
        try:
            while (data := session.read(0.2)) is not None:
                if data:
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            session.close()
            conn.close()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=relay, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[1]
    finally:
        stopping.set()
        acceptor.join(timeout=5)
        server.close()
