"""SSH public keys as users paste them: one OpenSSH public key line, checked and fingerprinted.

A key is accepted only when its line is ``TYPE BASE64 [COMMENT]``, the base64 decodes to the wire format of
that type (RFC 4253, 5656, 8709; OpenSSH's PROTOCOL.u2f for the security-key types) with nothing left over,
and an RSA modulus has at least 2048 bits. What is kept is ``TYPE BASE64`` alone: an authorized_keys option
(``command=``, ``from=``) or a second line can never reach a task's SSH server through it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

FIELD = "public_key"
MIN_RSA_BITS = 2048
MAX_LINE = 16 * 1024  # an RSA key of 16384 bits is under 3 KiB
MAX_COMMENT = 100

# Type -> (ECDSA curve name or "", whether it is a security key).
TYPES: dict[str, tuple[str, bool]] = {
    "ssh-ed25519": ("", False),
    "ecdsa-sha2-nistp256": ("nistp256", False),
    "ecdsa-sha2-nistp384": ("nistp384", False),
    "ecdsa-sha2-nistp521": ("nistp521", False),
    "ssh-rsa": ("", False),
    "sk-ssh-ed25519@openssh.com": ("", True),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("nistp256", True),
}
# An uncompressed point: 0x04, then x and y of the curve's size.
POINT_BYTES = {"nistp256": 1 + 2 * 32, "nistp384": 1 + 2 * 48, "nistp521": 1 + 2 * 66}
ED25519_BYTES = 32

_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File-", re.MULTILINE)
_SSH2 = "---- BEGIN SSH2 PUBLIC KEY ----"
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        """The line kept and given to a task's SSH server: type and key, no options, no comment."""
        return f"{self.type} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def fingerprint(self) -> str:
        """As ``ssh-keygen -l`` prints it: ``SHA256:`` and the unpadded base64 of the blob's SHA-256."""
        return fingerprint(self.blob)

    @property
    def bits(self) -> int:
        return key_bits(self.type, self.blob)


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _refuse(message: str) -> ValidationError:
    return ValidationError({FIELD: message})


def parse(text: object) -> PublicKey:
    """The public key in ``text`` (one OpenSSH public key line), or ValidationError on ``public_key`` saying why."""
    if not isinstance(text, str) or not text.strip():
        raise _refuse(_("Paste an SSH public key: one line such as “ssh-ed25519 AAAA… you@laptop”."))
    if _PRIVATE.search(text):
        raise _refuse(
            _(
                "This is a private key: never paste it anywhere. Paste the public key instead, the .pub file "
                "beside it (for example ~/.ssh/id_ed25519.pub), and keep the private key where it is."
            )
        )
    if _SSH2 in text:
        raise _refuse(
            _(
                "This is an SSH2 (RFC 4716) public key; convert it to OpenSSH's one-line form with ssh-keygen -i -f FILE."
            )
        )
    if len(text) > MAX_LINE:
        raise _refuse(_("An SSH public key is one line of at most %(limit)d characters.") % {"limit": MAX_LINE})
    line = text.strip()
    if "\n" in line or "\r" in line:
        raise _refuse(_("Paste one SSH public key: one line, not several."))
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in line):
        raise _refuse(_("An SSH public key line holds no control characters."))
    parts = line.split(None, 2)
    kind = parts[0]
    if kind not in TYPES:
        if len(parts) > 1 and parts[1] in TYPES or any(p in TYPES for p in line.split()):
            raise _refuse(
                _(
                    "Options before the key (such as command= or from=) are not accepted: start the line with the key's type."
                )
            )
        raise _refuse(
            _("%(type)s is not a key type EasyAI accepts; use one of: %(types)s.")
            % {"type": kind[:40], "types": ", ".join(TYPES)}
        )
    if len(parts) < 2:
        raise _refuse(_("The key's base64 data is missing after %(type)s.") % {"type": kind})
    data = parts[1]
    if not _BASE64.match(data):
        raise _refuse(_("The key's data after %(type)s is not base64.") % {"type": kind})
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(_("The key's data after %(type)s is not base64.") % {"type": kind}) from None
    _check_blob(kind, blob)
    comment = parts[2].strip() if len(parts) > 2 else ""
    return PublicKey(kind, blob, comment[:MAX_COMMENT])


class _Reader:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.at = 0

    def string(self) -> bytes:
        if self.at + 4 > len(self.blob):
            raise ValueError("cut short")
        (length,) = struct.unpack(">I", self.blob[self.at : self.at + 4])
        self.at += 4
        if self.at + length > len(self.blob):
            raise ValueError("cut short")
        value = self.blob[self.at : self.at + length]
        self.at += length
        return value

    def done(self) -> bool:
        return self.at == len(self.blob)


def _check_blob(kind: str, blob: bytes) -> None:
    curve, security_key = TYPES[kind]
    reader = _Reader(blob)
    try:
        inner = reader.string()
        if inner != kind.encode():
            raise _refuse(
                _("The key's data says it is %(inner)s, but the line says %(type)s: the line was altered.")
                % {"inner": inner[:40].decode("ascii", "replace"), "type": kind}
            )
        if kind == "ssh-rsa":
            exponent, modulus = reader.string(), reader.string()
            if not exponent or not modulus or modulus[0] & 0x80:
                raise ValueError("not an RSA key")
            bits = int.from_bytes(modulus, "big").bit_length()
            if bits < MIN_RSA_BITS:
                raise _refuse(
                    _(
                        "This RSA key has %(bits)d bits; EasyAI accepts RSA keys of %(min)d bits or more (or use ssh-ed25519)."
                    )
                    % {"bits": bits, "min": MIN_RSA_BITS}
                )
        elif curve:
            if reader.string() != curve.encode():
                raise ValueError("another curve")
            point = reader.string()
            if len(point) != POINT_BYTES[curve] or point[0] != 4:
                raise ValueError("not a point")
        else:
            if len(reader.string()) != ED25519_BYTES:
                raise ValueError("not an Ed25519 key")
        if security_key and not reader.string():
            raise ValueError("no application")
        if not reader.done():
            raise ValueError("bytes left over")
    except ValueError:
        raise _refuse(
            _("The key's data is not a whole %(type)s public key: copy the line again, in one piece.") % {"type": kind}
        ) from None


def key_bits(kind: str, blob: bytes) -> int:
    """The key's size as ssh-keygen states it."""
    curve, _security_key = TYPES.get(kind, ("", False))
    if kind == "ssh-rsa":
        reader = _Reader(blob)
        reader.string()
        reader.string()
        return int.from_bytes(reader.string(), "big").bit_length()
    if curve:
        return {"nistp256": 256, "nistp384": 384, "nistp521": 521}[curve]
    return 256
