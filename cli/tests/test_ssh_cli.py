"""easyai ssh-key, ssh-config and ssh-proxy as real commands (the installed ``easyai``) against a live portal.

The tunnel itself (ssh, scp and rsync through ``easyai ssh-proxy``) is tested end to end in jobs/tests/test_ssh.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import pytest

from accounts.models import SSHKey
from conftest import token_key_for

EASYAI = Path(sysconfig.get_path("scripts")) / "easyai"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def easyai(live_server, owner, tmp_path):
    """easyai(*argv) -> the finished process, as the owner on the live portal."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment.update(
        EASYAI_URL=live_server.url,
        EASYAI_TOKEN=token_key_for(owner),
        EASYAI_CONFIG_DIR=str(tmp_path / "easyai"),
        HOME=str(tmp_path / "home"),
    )

    def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(EASYAI), *argv], input=stdin, capture_output=True, text=True, env=environment, timeout=60
        )

    return run


@pytest.fixture
def key_pair(tmp_path) -> Path:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", str(path)], check=True)
    return path


def test_ssh_key_add_list_and_remove(easyai, owner, key_pair):
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key_pair}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    added = easyai("ssh-key", "add", f"{key_pair}.pub", "--name", "laptop")
    assert added.returncode == 0, added.stderr
    key = SSHKey.objects.get(user=owner)
    assert added.stdout == f"Added SSH key laptop ({fingerprint}), id {key.pk}.\n"

    piped = easyai("ssh-key", "add", "-", stdin=Path(f"{key_pair}.pub").read_text())
    assert piped.returncode == 1 and piped.stderr == "public_key: You already added this key, as “laptop”.\n"

    listed = easyai("ssh-key", "list")
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "TYPE", "FINGERPRINT", "ADDED"]
    assert listed.stdout.splitlines()[1].split()[:4] == [str(key.pk), "laptop", "ssh-ed25519", fingerprint]
    as_json = json.loads(easyai("ssh-key", "list", "-o", "json").stdout)
    assert [(k["id"], k["fingerprint"]) for k in as_json] == [(key.pk, fingerprint)]

    missing = easyai("ssh-key", "remove", "desktop")
    assert missing.returncode == 1 and f"no SSH key 'desktop' of yours; your keys: {key.pk} (laptop)" in missing.stderr
    removed = easyai("ssh-key", "remove", "laptop")
    assert (removed.returncode, removed.stdout) == (0, f"Removed SSH key laptop ({fingerprint}).\n")
    assert not SSHKey.objects.exists()


def test_a_private_key_never_leaves_the_machine(easyai, key_pair, live_server):
    refused = easyai("ssh-key", "add", str(key_pair))
    assert refused.returncode == 1
    assert refused.stderr == f"{key_pair} is a private key, which never leaves this machine: give {key_pair}.pub\n"
    piped = easyai("ssh-key", "add", "-", stdin=key_pair.read_text())
    assert piped.returncode == 1 and "is a private key" in piped.stderr
    assert not SSHKey.objects.exists()
    short = easyai("ssh-key", "add", "-", stdin="ssh-ed25519 AAAA me")
    assert short.returncode == 1 and short.stderr.startswith("public_key: The key's data is not a whole ssh-ed25519")


def test_ssh_config_writes_its_block_first_once_and_keeps_the_rest(easyai, tmp_path):
    printed = easyai("ssh-config")
    assert printed.returncode == 0
    lines = printed.stdout.splitlines()
    assert lines[1] == "Host j-*"
    assert lines[2] == f"    ProxyCommand env EASYAI_CONFIG_DIR={tmp_path / 'easyai'} {EASYAI} ssh-proxy %h"
    assert lines[3:6] == [
        "    User easyai",
        f"    UserKnownHostsFile {tmp_path / 'easyai' / 'known_hosts'}",
        "    StrictHostKeyChecking accept-new",
    ]

    config = tmp_path / "ssh" / "config"
    config.parent.mkdir()
    config.write_text("Host build\n    HostName build.example.com\n")
    config.chmod(0o600)
    for _ in range(2):
        written = easyai("ssh-config", "--write", "--file", str(config))
        assert written.returncode == 0, written.stderr
    text = config.read_text()
    assert text == printed.stdout + "\nHost build\n    HostName build.example.com\n"  # one block, first
    assert config.stat().st_mode & 0o777 == 0o600
    # ssh reads it as written: the block applies to a task's name.
    resolved = subprocess.run(["ssh", "-G", "-F", str(config), "j-3k9x2m4q.master-0"], capture_output=True, text=True)
    options = dict(line.split(" ", 1) for line in resolved.stdout.splitlines())
    assert options["user"] == "easyai" and options["proxycommand"].endswith(f"{EASYAI} ssh-proxy %h")


def test_ssh_proxy_and_ssh_say_what_a_bad_name_is(easyai):
    bad = easyai("ssh-proxy", "example.com")
    assert bad.returncode == 2
    assert (
        bad.stderr == "'example.com' is not a task's SSH name: write it as j-xxxxxxxx.TASK (e.g. j-3k9x2m4q.master-0)\n"
    )
    unknown = easyai("ssh-proxy", "j-00000000.main-0")
    assert unknown.returncode == 1 and "j-00000000" in unknown.stderr
