"""Connection secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

The keys come from `LOADBAY_INGESTION_SECRET_KEYS` (newest first) or
`LOADBAY_INGESTION_SECRET_KEY`: a Fernet key is used as it is; any other string is stretched
into one with HKDF-SHA256, so a plain passphrase works too. Several keys rotate (MultiFernet):
a secret is decrypted with whichever key sealed it and sealed again with the newest.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HKDF_INFO = b"loadbay-ingestion connection secrets v1"


def _fernet_key(secret: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return secret.encode()
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(derived)


class SecretBox:
    """Encrypts and decrypts connection secrets; never logs or returns them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("no encryption key: set LOADBAY_INGESTION_SECRET_KEY")
        fernets = [Fernet(_fernet_key(k)) for k in keys]
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, plaintext: str) -> bytes:
        return self._newest.encrypt(plaintext.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._all.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a stored access key cannot be decrypted with any of the configured keys"
                " (LOADBAY_INGESTION_SECRET_KEYS): add the key it was saved with, or enter the"
                " connection's access keys again"
            ) from exc

    def is_current(self, token: bytes) -> bool:
        """Whether `token` is sealed with the newest key (nothing to rotate)."""
        try:
            self._newest.decrypt(token)
        except InvalidToken:
            return False
        return True

    def reseal(self, token: bytes) -> bytes:
        """The same secret sealed with the newest key; ValueError if no key opens it."""
        try:
            return self._all.rotate(token)
        except InvalidToken as exc:
            raise ValueError("sealed with none of the configured keys") from exc
