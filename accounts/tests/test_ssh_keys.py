"""SSH public keys on the profile: the parser (against real ssh-keygen keys), the API and the page."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts import services, ssh_keys
from accounts.models import SSHKey
from conftest import api_client_for


def _keygen(folder: Path, name: str, *args: str) -> tuple[str, str]:
    """A real key pair made by ssh-keygen: (the public line, ssh-keygen's SHA256 fingerprint)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@laptop", "-f", str(path), *args], check=True)
    printed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True, text=True, check=True)
    return (folder / f"{name}.pub").read_text(), printed.stdout.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("keys")
    made = {
        "ed25519": _keygen(folder, "ed25519", "-t", "ed25519"),
        "ecdsa256": _keygen(folder, "ecdsa256", "-t", "ecdsa", "-b", "256"),
        "ecdsa384": _keygen(folder, "ecdsa384", "-t", "ecdsa", "-b", "384"),
        "ecdsa521": _keygen(folder, "ecdsa521", "-t", "ecdsa", "-b", "521"),
        "rsa2048": _keygen(folder, "rsa2048", "-t", "rsa", "-b", "2048"),
        "rsa1024": _keygen(folder, "rsa1024", "-t", "rsa", "-b", "1024"),
        "other": _keygen(folder, "other", "-t", "ed25519"),
    }
    made["private"] = ((folder / "ed25519").read_text(), "")
    return made


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _sk_line(kind: str) -> str:
    """A security-key public key as OpenSSH writes it (PROTOCOL.u2f): ssh-keygen makes one only with a token."""
    if kind == "sk-ssh-ed25519@openssh.com":
        blob = _string(kind.encode()) + _string(bytes(range(32))) + _string(b"ssh:")
    else:
        blob = _string(kind.encode()) + _string(b"nistp256") + _string(b"\x04" + bytes(64)) + _string(b"ssh:")
    return f"{kind} {base64.b64encode(blob).decode()} yubikey"


def _error(text: object) -> str:
    with pytest.raises(ValidationError) as refused:
        ssh_keys.parse(text)
    assert list(refused.value.message_dict) == ["public_key"]  # every refusal names the field
    return refused.value.message_dict["public_key"][0]


# --- the parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa2048"])
def test_real_keys_of_every_accepted_type_parse_with_ssh_keygens_fingerprint(keys, name):
    line, printed = keys[name]
    key = ssh_keys.parse(line)
    assert key.fingerprint == printed
    assert key.comment == f"{name}@laptop"
    # Kept without its comment; the type and the base64 as the file has them.
    assert key.line == " ".join(line.split()[:2])


@pytest.mark.parametrize("kind", ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"])
def test_security_keys_parse(kind):
    key = ssh_keys.parse(_sk_line(kind))
    assert key.type == kind and key.fingerprint.startswith("SHA256:")


def test_a_short_rsa_key_is_refused_with_its_size(keys):
    assert "1024 bits" in _error(keys["rsa1024"][0]) and "2048" in _error(keys["rsa1024"][0])


def test_a_private_key_pasted_by_mistake_gets_its_own_error(keys):
    assert "This is a private key: never paste it anywhere" in _error(keys["private"][0])
    assert "private key" in _error("-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----\n")
    assert "private key" in _error("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n")


def test_a_type_that_does_not_match_the_keys_data_is_refused(keys):
    data = keys["ed25519"][0].split()[1]
    message = _error(f"ecdsa-sha2-nistp256 {data}")
    assert "says it is ssh-ed25519, but the line says ecdsa-sha2-nistp256" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Paste an SSH public key"),
        (None, "Paste an SSH public key"),
        ("hello world", "is not a key type EasyAI accepts"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "is not a key type EasyAI accepts"),
        ("ssh-ed25519", "base64 data is missing"),
        ("ssh-ed25519 not*base64!", "is not base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "is not a whole ssh-ed25519 public key"),
        ("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----", "ssh-keygen -i"),
    ],
)
def test_what_is_not_one_public_key_line_is_refused_saying_why(text, words):
    assert words in _error(text)


def test_options_a_second_line_and_left_over_bytes_are_refused(keys):
    line = keys["ed25519"][0].strip()
    assert "Options before the key" in _error(f'command="/bin/sh" {line}')
    assert "one line, not several" in _error(f"{line}\n{keys['other'][0]}")
    kind, data = line.split()[:2]
    padded = base64.b64encode(base64.b64decode(data) + b"\0").decode()
    assert "is not a whole ssh-ed25519 public key" in _error(f"{kind} {padded}")


# --- the service --------------------------------------------------------------------------------


def test_add_names_a_key_by_its_comment_and_refuses_it_twice_changing_nothing(keys, owner, mate):
    key = services.ssh_key_add(user=owner, public_key=keys["ed25519"][0])
    assert (key.name, key.fingerprint) == ("ed25519@laptop", keys["ed25519"][1])
    with pytest.raises(ValidationError) as again:
        services.ssh_key_add(user=owner, public_key=keys["ed25519"][0], name="another")
    assert "You already added this key, as “ed25519@laptop”" in again.value.message_dict["public_key"][0]
    with pytest.raises(ValidationError) as same_name:
        services.ssh_key_add(user=owner, public_key=keys["other"][0], name="ed25519@laptop")
    assert list(same_name.value.message_dict) == ["name"]
    # Another user may hold the same key: uniqueness is per user.
    services.ssh_key_add(user=mate, public_key=keys["ed25519"][0])
    assert SSHKey.objects.filter(user=owner).count() == 1 and SSHKey.objects.count() == 2


# --- the API ------------------------------------------------------------------------------------


def test_api_adds_lists_and_removes_only_your_own_keys(keys, owner, mate, team_admin, django_assert_num_queries):
    owner_api, mate_api = api_client_for(owner), api_client_for(mate)
    added = owner_api.post("/api/v1/ssh-keys/", {"public_key": keys["ed25519"][0], "name": "laptop"}, format="json")
    assert added.status_code == 201, added.json()
    body = added.json()
    assert (body["name"], body["type"], body["fingerprint"]) == ("laptop", "ssh-ed25519", keys["ed25519"][1])
    mates = mate_api.post("/api/v1/ssh-keys/", {"public_key": keys["other"][0]}, format="json").json()
    owner_api.post("/api/v1/ssh-keys/", {"public_key": keys["ecdsa256"][0]}, format="json")

    with django_assert_num_queries(3):  # the token, the count, the page: no query per key
        listed = owner_api.get("/api/v1/ssh-keys/").json()
    assert [k["name"] for k in listed["results"]] == ["laptop", "ecdsa256@laptop"]
    assert [k["name"] for k in mate_api.get("/api/v1/ssh-keys/").json()["results"]] == ["other@laptop"]

    # Another's key is not there for you: 404 on read and delete, even for their team's admin; it stays.
    for client in (owner_api, api_client_for(team_admin)):
        assert client.get(f"/api/v1/ssh-keys/{mates['id']}/").status_code == 404
        assert client.delete(f"/api/v1/ssh-keys/{mates['id']}/").status_code == 404
    assert SSHKey.objects.filter(pk=mates["id"]).exists()

    assert owner_api.delete(f"/api/v1/ssh-keys/{body['id']}/").status_code == 204
    assert owner_api.delete(f"/api/v1/ssh-keys/{body['id']}/").status_code == 404
    assert list(SSHKey.objects.filter(user=owner).values_list("name", flat=True)) == ["ecdsa256@laptop"]
    assert api_client_for().get("/api/v1/ssh-keys/").status_code in (401, 403)


def test_api_refuses_bad_keys_with_the_field_named_and_adds_nothing(keys, owner):
    api = api_client_for(owner)
    for data, field, words in [
        ({"public_key": keys["private"][0]}, "public_key", "This is a private key"),
        ({"public_key": keys["rsa1024"][0]}, "public_key", "1024 bits"),
        ({"public_key": "ssh-ed25519 AAAA"}, "public_key", "not a whole ssh-ed25519"),
        ({}, "public_key", "required"),
        ({"public_key": keys["ed25519"][0], "name": "x" * 101}, "name", "100"),
    ]:
        answer = api.post("/api/v1/ssh-keys/", data, format="json")
        assert answer.status_code == 400, answer.content
        assert words in answer.json()[field][0], answer.json()
    assert not SSHKey.objects.exists()


def test_the_schema_documents_the_ssh_keys_api(owner):
    schema = api_client_for(owner).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/ssh-keys/"])
    assert {"get", "delete"} <= set(schema["paths"]["/api/v1/ssh-keys/{id}/"])


# --- the page -----------------------------------------------------------------------------------


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_lists_adds_and_removes_your_keys_and_shows_errors(keys, owner, mate):
    browser = _signed_in(owner)
    page = browser.get(reverse("ssh-keys"))
    assert page.status_code == 200 and "You have no SSH key yet." in page.content.decode()

    added = browser.post(reverse("ssh-keys"), {"name": "", "public_key": keys["ed25519"][0]}, follow=True)
    text = added.content.decode()
    assert "ed25519@laptop" in text and keys["ed25519"][1] in text

    refused = browser.post(reverse("ssh-keys"), {"name": "bad", "public_key": keys["private"][0]})
    assert refused.status_code == 400
    assert (
        "This is a private key" in refused.content.decode() and 'id="id_public_key_error"' in refused.content.decode()
    )
    assert SSHKey.objects.filter(user=owner).count() == 1

    mates = services.ssh_key_add(user=mate, public_key=keys["other"][0])
    assert keys["other"][1] not in browser.get(reverse("ssh-keys")).content.decode()
    assert browser.post(reverse("ssh-key-remove", args=[mates.pk])).status_code == 404
    assert SSHKey.objects.filter(pk=mates.pk).exists()

    mine = SSHKey.objects.get(user=owner)
    assert browser.post(reverse("ssh-key-remove", args=[mine.pk])).status_code == 302
    assert not SSHKey.objects.filter(user=owner).exists()


def test_page_needs_a_sign_in(db):
    answer = Client().get(reverse("ssh-keys"))
    assert answer.status_code == 302 and reverse("login") in answer["Location"]
