"""OIDC/JWT bearer tokens from a company's identity provider (pyjwt).

A token is accepted when its signature verifies with one of the issuer's published keys (JWKS,
found through the issuer's discovery document unless a JWKS URL is configured), it has not
expired, and its issuer and audience are the configured ones. The user name is a configured
claim (``sub`` by default) behind a prefix (``oidc:``), and groups come from another claim
(``groups``), so role bindings name ``oidc:NAME`` or ``group:NAME``: the provider's names live
apart from local users, and a ``sub`` of ``admin`` or ``group:x`` is neither the local admin
nor a group.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx
import jwt

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


class OidcError(Exception):
    """The bearer token was not accepted; the message says why (for the audit log)."""


@dataclass(frozen=True)
class OidcIdentity:
    user: str
    groups: tuple[str, ...]
    expires_at: float | None = None  # the token's exp claim


class OidcVerifier:
    def __init__(self, issuer: str, audience: str, jwks_url: str | None = None,
                 username_claim: str = "sub", groups_claim: str = "groups",
                 ca_bundle: str | None = None, user_prefix: str = "oidc:") -> None:
        if not user_prefix.endswith(":") or user_prefix == "group:":
            raise ValueError(f"OIDC user prefix {user_prefix!r} must end with ':' and not be "
                             f"group:, so the provider's users never meet local names")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.username_claim = username_claim
        self.user_prefix = user_prefix
        self.groups_claim = groups_claim
        self._jwks_url = jwks_url
        self._verify: str | bool = ca_bundle or True
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=600)
            return self._client

    def _discover(self) -> str:
        where = f"{self.issuer}/.well-known/openid-configuration"
        try:
            doc = httpx.get(where, timeout=10, verify=self._verify).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"cannot read the issuer's discovery document {where}: {exc}"
                            ) from None
        url = doc.get("jwks_uri") if isinstance(doc, dict) else None
        if not isinstance(url, str):
            raise OidcError(f"{where} names no jwks_uri")
        return url

    def verify(self, token: str) -> OidcIdentity:
        try:
            key = self._keys().get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "iss", "aud"]},
                                leeway=30)
        except jwt.PyJWKClientError as exc:
            raise OidcError(f"no signing key for this token: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise OidcError(f"invalid bearer token: {exc}") from None
        user = claims.get(self.username_claim)
        if not isinstance(user, str) or not user:
            raise OidcError(f"the token has no {self.username_claim} claim")
        raw = claims.get(self.groups_claim, [])
        groups = tuple(g for g in raw if isinstance(g, str)) if isinstance(raw, list) else ()
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) else None
        return OidcIdentity(user=(self.user_prefix + user)[:253], groups=groups,
                            expires_at=expires)
