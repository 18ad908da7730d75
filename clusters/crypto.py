"""Encryption at rest for cluster credentials (Fernet, key from settings)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    key = settings.EASYAI_FIELD_KEY
    if not key:
        # Derived from SECRET_KEY: rotating SECRET_KEY then needs EASYAI_FIELD_KEY set to the old derivation.
        key = base64.urlsafe_b64encode(hashlib.sha256(f"easyai-field:{settings.SECRET_KEY}".encode()).digest())
    try:
        return Fernet(key)
    except ValueError as exc:
        raise ImproperlyConfigured(f"EASYAI_FIELD_KEY is not a valid Fernet key: {exc}") from exc


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("stored kubeconfig cannot be decrypted with the current key") from exc


def endpoint_token(job_id: str) -> str:
    """The token a Jupyter server of the job's on a cluster demands: only the portal (SECRET_KEY) can make it.

    The proxy sends it with every request it relays, so neither the pod's IP nor an ingress gives the server
    to anyone who has not come through the portal's permission check.
    """
    return hashlib.sha256(f"easyai-endpoint:{settings.SECRET_KEY}:{job_id}".encode()).hexdigest()[:48]
