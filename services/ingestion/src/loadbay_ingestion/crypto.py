"""Connection secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

The key comes from `LOADBAY_INGESTION_SECRET_KEY`: a Fernet key is used as it is; any other
string is stretched into one with HKDF-SHA256, so a plain passphrase works too.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

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

    def __init__(self, secret_key: SecretStr) -> None:
        self._fernet = Fernet(_fernet_key(secret_key.get_secret_value()))

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a stored access key cannot be decrypted: LOADBAY_INGESTION_SECRET_KEY changed"
                " since it was saved; enter the connection's access keys again"
            ) from exc
