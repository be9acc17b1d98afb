"""Encryption of project secrets at rest with Fernet (AES-128-CBC and HMAC-SHA256).

The key comes from configuration (``FAIRPOOL_SECRET_KEY``) or from a key file that the first
start creates with mode 0600; every server sharing a database must use the same key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(ValueError):
    """The key is missing, malformed or does not decrypt what is stored."""


def load_or_create_key(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes().strip()
        _check(key, str(path))
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return load_or_create_key(path)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def _check(key: bytes, where: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise SecretKeyError(f"{where}: not a Fernet key (32 url-safe base64-encoded bytes; "
                             "make one with `fairpool secret new-key`)") from None


class SecretBox:
    def __init__(self, key: bytes) -> None:
        _check(key, "secret key")
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("a stored secret does not decrypt with this key; every server "
                                 "of a pool must use the same secret key") from None
