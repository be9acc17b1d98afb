"""API tokens (create, list, revoke) and authentication of each request's bearer token."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fairpool.auth import tokens as tok
from fairpool.auth.oidc import OidcError, OidcVerifier
from fairpool.auth.rbac import POOL, Principal, Role, subjects_of
from fairpool.services import audit
from fairpool.services.access_specs import TokenCreate, TokenCreated, TokenOut
from fairpool.services.errors import Conflict, NotFound, ServiceError
from fairpool.services.roles import bindings_of
from fairpool.store.db import Store
from fairpool.store.models import RoleBindingRow, TokenRow


class Unauthenticated(ServiceError):
    status = 401


def _out(r: TokenRow) -> TokenOut:
    return TokenOut(id=r.id, user=r.user, description=r.description, created_by=r.created_by,
                    created_at=r.created_at, expires_at=r.expires_at, revoked_at=r.revoked_at,
                    last_used_at=r.last_used_at)


def create(store: Store, actor: str, spec: TokenCreate, address: str = "") -> TokenCreated:
    new = tok.mint()
    now = time.time()
    row = TokenRow(id=new.id, user=spec.user, salt=new.salt, hash=new.hash,
                   description=spec.description, created_by=actor, created_at=now,
                   expires_at=None if spec.expires_in_s is None else now + spec.expires_in_s)
    with store.writing() as s:
        s.add(row)
        audit.record(s, actor, "token.create", f"{spec.user}/{new.id}", address=address)
    return TokenCreated(**_out(row).model_dump(), token=new.value)


def list_tokens(store: Store, actor: Principal) -> list[TokenOut]:
    q = select(TokenRow).order_by(TokenRow.created_at)
    if not actor.is_admin:
        q = q.where(TokenRow.user == actor.user)
    with store.session() as s:
        return [_out(r) for r in s.execute(q).scalars()]


def owner(store: Store, token_id: str) -> str | None:
    with store.session() as s:
        return s.execute(select(TokenRow.user).where(TokenRow.id == token_id)).scalar()


def revoke(store: Store, actor: str, token_id: str, address: str = "",
           auth: Authenticator | None = None) -> TokenOut:
    with store.writing() as s:
        row = s.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        if row.revoked_at is not None:
            raise Conflict(f"token {token_id} was already revoked")
        row.revoked_at = time.time()
        audit.record(s, actor, "token.revoke", f"{row.user}/{token_id}", address=address)
        out = _out(row)
    if auth is not None:
        auth.forget()
    return out


def bootstrap_admin(store: Store, user: str = "admin") -> str | None:
    """On a pool nobody administers yet, make ``user`` admin and return a new token for it."""
    with store.session() as s:
        if s.execute(select(RoleBindingRow.id).where(
                RoleBindingRow.role == Role.ADMIN.value).limit(1)).first() is not None:
            return None
    try:
        with store.writing() as s:
            s.add(RoleBindingRow(subject=user, role=Role.ADMIN.value, scope=POOL,
                                 created_by="fairpool", created_at=time.time()))
            audit.record(s, "fairpool", "role.grant", f"{user}:admin@*",
                         detail="first start: the pool's first administrator")
    except IntegrityError:  # another server sharing the database did it first
        return None
    spec = TokenCreate(user=user, expires_in_s=None, description="created by the first start")
    return create(store, "fairpool", spec).token


def recover_admin(store: Store, user: str) -> str:
    """Break-glass for whoever holds the database: make ``user`` admin (if it is not) and
    return a new token for it. Recorded in the audit log."""
    with store.writing() as s:
        held = s.execute(select(RoleBindingRow.id).where(
            RoleBindingRow.subject == user, RoleBindingRow.role == Role.ADMIN.value,
            RoleBindingRow.scope == POOL)).first()
        if held is None:
            s.add(RoleBindingRow(subject=user, role=Role.ADMIN.value, scope=POOL,
                                 created_by="fairpool recover-admin", created_at=time.time()))
        audit.record(s, "fairpool recover-admin", "role.grant", f"{user}:admin@*",
                     detail="break-glass recovery with direct database access")
    spec = TokenCreate(user=user, expires_in_s=86400, description="recover-admin")
    return create(store, "fairpool recover-admin", spec).token


@dataclass
class _Cached:
    principal: Principal
    until: float
    expires_at: float | None


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or raises
    :class:`Unauthenticated` (and records the failure). Verified credentials are cached for a
    few seconds; a revocation through this server takes effect at once, through another server
    sharing the database within ``cache_ttl_s``."""

    def __init__(self, store: Store, oidc: OidcVerifier | None = None,
                 cache_ttl_s: float = 5.0, failures_per_s: float = 20.0) -> None:
        self.store = store
        self.oidc = oidc
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, _Cached] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._fail_budget = failures_per_s
        self._fail_rate = failures_per_s
        self._fail_at = time.monotonic()
        self._suppressed = 0

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def _bearer(header: str | None) -> str | None:
        scheme, _, value = (header or "").partition(" ")
        value = value.strip()
        return value if scheme.lower() == "bearer" and value else None

    def _hit(self, key: str, now: float) -> Principal | None:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit.until > now and (hit.expires_at is None
                                                    or hit.expires_at > now):
            return hit.principal
        return None

    def cached(self, header: str | None) -> Principal | None:
        """The caller, if its credentials were verified moments ago (no I/O: the API calls it
        on its event loop and goes to a thread only when this says None)."""
        value = self._bearer(header)
        if value is None:
            return None
        return self._hit(hashlib.sha256(value.encode()).hexdigest(), time.time())

    def authenticate(self, header: str | None, address: str = "") -> Principal:
        value = self._bearer(header)
        if value is None:
            self._fail("-", "no bearer token", address)
            raise Unauthenticated("authentication required: send 'Authorization: Bearer "
                                  "<token>' (create one with `fairpool token create`)")
        key = hashlib.sha256(value.encode()).hexdigest()
        now = time.time()
        found = self._hit(key, now)
        if found is not None:
            return found
        if tok.looks_like_api_token(value):
            principal, expires = self._api_token(value, address, now)
        elif self.oidc is not None:
            principal, expires = self._jwt(value, address)
        else:
            self._fail("-", "malformed token", address)
            raise Unauthenticated("the bearer token is not a fairpool API token (fp_…)")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = _Cached(principal, now + self.cache_ttl_s, expires)
        return principal

    def _api_token(self, value: str, address: str, now: float) -> tuple[Principal, float | None]:
        parsed = tok.parse(value)
        if parsed is None:
            self._fail("-", "malformed token", address)
            raise Unauthenticated("the bearer token is malformed")
        token_id, secret = parsed
        with self.store.session() as s:
            row = s.get(TokenRow, token_id)
        if row is None or not tok.matches(row.salt, row.hash, secret):
            self._fail("-", f"unknown token {token_id}", address)
            raise Unauthenticated("the token is not valid")
        if row.revoked_at is not None:
            self._fail(row.user, f"revoked token {token_id}", address)
            raise Unauthenticated(f"token {token_id} was revoked")
        if row.expires_at is not None and row.expires_at <= now:
            self._fail(row.user, f"expired token {token_id}", address)
            raise Unauthenticated(f"token {token_id} has expired; create a new one")
        self._touch(token_id, now)
        subjects = subjects_of(row.user, ())
        return Principal(user=row.user, bindings=bindings_of(self.store, subjects),
                         token_id=token_id, via="token", subjects=subjects), row.expires_at

    def _jwt(self, value: str, address: str) -> tuple[Principal, float | None]:
        assert self.oidc is not None
        try:
            ident = self.oidc.verify(value)
        except OidcError as exc:
            self._fail("-", str(exc), address)
            raise Unauthenticated(str(exc)) from None
        subjects = subjects_of(ident.user, ident.groups)
        return Principal(user=ident.user, bindings=bindings_of(self.store, subjects),
                         groups=ident.groups, via="oidc", subjects=subjects), None

    def _touch(self, token_id: str, now: float) -> None:
        """Record use at most once a minute per token: a write per request would not scale."""
        with self._lock:
            if now - self._used.get(token_id, 0.0) < 60.0:
                return
            self._used[token_id] = now
        with self.store.writing() as s:
            s.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=now))

    def _fail(self, actor: str, why: str, address: str) -> None:
        """Audit a failed login; a flood is recorded at a bounded rate, with a count."""
        with self._lock:
            t = time.monotonic()
            self._fail_budget = min(self._fail_rate,
                                    self._fail_budget + (t - self._fail_at) * self._fail_rate)
            self._fail_at = t
            if self._fail_budget < 1:
                self._suppressed += 1
                return
            self._fail_budget -= 1
            extra, self._suppressed = self._suppressed, 0
        detail = why + (f" ({extra} more failures not recorded)" if extra else "")
        audit.record_now(self.store, actor, "login", outcome="denied", detail=detail,
                         address=address)
