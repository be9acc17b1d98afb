"""API tokens: ``fp_<id>_<secret>``. The id is public (it names the token in lists, audit and
revocation); the secret is 256 random bits, shown once and stored only as a salted SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "fp_"
_TOKEN = re.compile(r"^fp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    id: str
    secret: str
    salt: str
    hash: str

    @property
    def value(self) -> str:
        return f"{PREFIX}{self.id}_{self.secret}"


def digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def mint() -> NewToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 43 characters
    salt = secrets.token_hex(16)
    return NewToken(token_id, secret, salt, digest(salt, secret))


def parse(value: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = _TOKEN.fullmatch(value)
    return (match.group(1), match.group(2)) if match else None


def looks_like_api_token(value: str) -> bool:
    return value.startswith(PREFIX)


def matches(salt: str, stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(digest(salt, secret), stored_hash)
