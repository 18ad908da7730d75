"""Encryption at rest for cluster credentials (Fernet), with a key of its own.

The key is its own secret, never derived from SECRET_KEY (a task that once read SECRET_KEY must not be
able to decrypt a cluster's credentials with it):

- ``EASYAI_FIELD_KEY``: one Fernet key, or several separated by commas; the first encrypts, all decrypt
  (set "new,old", run ``manage.py rotate_field_key``, then drop "old");
- otherwise the file ``EASYAI_FIELD_KEY_FILE`` (default ``var/field_key``), written on first use with mode
  0600; the local backend's sandbox never shows var/ to a task. ``rotate_field_key`` replaces it.

Rows written before the key was its own were encrypted with a key derived from SECRET_KEY: they still
decrypt (the derived key is tried last) and migration 0002 re-encrypts them with the current key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def key_file() -> Path:
    return Path(settings.EASYAI_FIELD_KEY_FILE)


def keys_from_environment() -> bool:
    return bool(settings.EASYAI_FIELD_KEY.strip())


def _split(text: str) -> list[str]:
    return [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]


def write_key_file(keys: list[str], path: Path | None = None) -> None:
    """Write the key file atomically, readable by the portal's user only."""
    path = path or key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("\n".join(keys) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def current_keys() -> list[str]:
    """The field keys in use, the encrypting one first; the key file is made on first use."""
    if keys_from_environment():
        return _split(settings.EASYAI_FIELD_KEY)
    path = key_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        key = Fernet.generate_key().decode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once agree on one key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            text = path.read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"EASYAI_FIELD_KEY_FILE={str(path)!r} cannot be created: {exc}") from exc
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
            text = key
    except OSError as exc:
        raise ImproperlyConfigured(f"EASYAI_FIELD_KEY_FILE={str(path)!r} cannot be read: {exc}") from exc
    keys = _split(text)
    if not keys:
        raise ImproperlyConfigured(f"EASYAI_FIELD_KEY_FILE={str(path)!r} holds no key")
    return keys


def legacy_key() -> bytes:
    """The key older versions derived from SECRET_KEY: only ever used to decrypt rows they wrote."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"easyai-field:{settings.SECRET_KEY}".encode()).digest())


def _fernet(keys: list[str]) -> Fernet:
    try:
        return Fernet(keys[0])
    except ValueError as exc:
        raise ImproperlyConfigured(f"EASYAI_FIELD_KEY is not a valid Fernet key: {exc}") from exc


def _decrypter(*, legacy: bool = True) -> MultiFernet:
    keys = current_keys()
    fernets = [_fernet([k]) for k in keys]
    if legacy:
        fernets.append(Fernet(legacy_key()))
    return MultiFernet(fernets)


# (model label, field) of every column holding values encrypted with the field key: the clusters' kubeconfigs,
# and what apps above register in their AppConfig.ready() (an app's secrets). rotate_field_key rewrites them all.
ENCRYPTED_FIELDS: list[tuple[str, str]] = [("clusters.Cluster", "kubeconfig_encrypted")]


def register_encrypted(model_label: str, field: str) -> None:
    if (model_label, field) not in ENCRYPTED_FIELDS:
        ENCRYPTED_FIELDS.append((model_label, field))


def encrypt(text: str) -> str:
    return _fernet(current_keys()).encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _decrypter().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("a stored encrypted value cannot be decrypted with the current key") from exc


def needs_reencryption(token: str) -> bool:
    """Whether a stored value is not under the encrypting key (a legacy or older key): rotate it."""
    try:
        _fernet(current_keys()).decrypt(token.encode())
    except InvalidToken:
        return True
    return False


def reencrypt(token: str) -> str:
    """The value encrypted with the current encrypting key (ImproperlyConfigured if no key opens it)."""
    return encrypt(decrypt(token))


def endpoint_token(job_id: str) -> str:
    """The token a Jupyter server of the job's demands: only the portal (SECRET_KEY) can make it.

    The proxy sends it with every request it relays, so neither the pod's IP, an ingress nor another task
    on the local host's loopback gives the server to anyone who has not come through the portal's
    permission check.
    """
    return hashlib.sha256(f"easyai-endpoint:{settings.SECRET_KEY}:{job_id}".encode()).hexdigest()[:48]


def endpoint_password_hash(job_id: str) -> str:
    """A VS Code notebook's code-server password, as its HASHED_PASSWORD (SHA-256 of the endpoint token): the
    server takes this value as its session cookie, which only the portal's proxy sends."""
    return hashlib.sha256(endpoint_token(job_id).encode()).hexdigest()
