"""API tokens (create, list, revoke) and authentication of each request's bearer token.

Tokens are not free: a user holds at most ``max_live`` unexpired, unrevoked tokens, a token a
non-admin creates lives at most ``max_lifetime_s`` (asking for longer, or for none, gets that),
and one created with an identity provider's login (or with a token so created) lives at most
``oidc_lifetime_s`` and never past that login, so an identity the provider ends cannot outlive
it here. Tokens of disabled users (services/users.py) are refused.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairpool.auth import tokens as tok
from fairpool.auth.oidc import OidcError, OidcVerifier
from fairpool.auth.rbac import POOL, Principal, subjects_of
from fairpool.domain.roles import Role
from fairpool.schemas.access import TokenCreate, TokenCreated, TokenOut
from fairpool.services import audit, users
from fairpool.services.errors import Conflict, NotFound, ServiceError
from fairpool.services.roles import bindings_of
from fairpool.store.db import Store
from fairpool.store.models import RoleBindingRow, TokenRow


class Unauthenticated(ServiceError):
    status = 401


class UserDisabled(ServiceError):
    status = 403


@dataclass(frozen=True)
class TokenLimits:
    """Bounds on the tokens created through the API (settings ``max_tokens_per_user``,
    ``max_token_lifetime_s`` and ``oidc_token_lifetime_s``)."""

    max_live: int = 20
    max_lifetime_s: float = 90 * 86400
    oidc_lifetime_s: float = 86400


def _out(r: TokenRow) -> TokenOut:
    return TokenOut(id=r.id, user=r.user, description=r.description, created_by=r.created_by,
                    created_at=r.created_at, expires_at=r.expires_at, revoked_at=r.revoked_at,
                    last_used_at=r.last_used_at)


def _expiry(spec: TokenCreate, minter: Principal | None, limits: TokenLimits,
            now: float) -> tuple[float | None, str | None]:
    """When the new token expires, and its origin: admins (and the server itself) get what
    they ask for; anyone else at most the longest lifetime allowed, never past the credentials
    the caller used (a short-lived token cannot mint a long-lived one), and shorter still for
    credentials that come from an identity provider's login."""
    if minter is None or minter.is_admin:
        return (None if spec.expires_in_s is None else now + spec.expires_in_s), None
    longest, origin = limits.max_lifetime_s, None
    if minter.mint_until is not None:
        longest = min(longest, minter.mint_until - now)
    if minter.from_oidc:
        longest, origin = min(longest, limits.oidc_lifetime_s), "oidc"
    if longest < 1.0:
        raise Unauthenticated("the credentials you use expire in under a second; sign in "
                              "again (or ask for a new token), then create the token")
    asked = spec.expires_in_s
    return now + (longest if asked is None else min(asked, longest)), origin


def create(store: Store, actor: str, spec: TokenCreate, address: str = "",
           minter: Principal | None = None, limits: TokenLimits | None = None) -> TokenCreated:
    """A new token for ``spec.user``. Through the API ``minter`` is the caller and ``limits``
    apply; without them (the first start's admin token, recover-admin) the server creates it
    as asked, and a disabled user is enabled again (audited)."""
    new = tok.mint()
    now = time.time()
    expires_at, origin = _expiry(spec, minter, limits or TokenLimits(), now)
    row = TokenRow(id=new.id, user=spec.user, salt=new.salt, hash=new.hash,
                   description=spec.description, created_by=actor, created_at=now,
                   expires_at=expires_at, origin=origin)
    with store.writing() as s:
        user = users.locked(s, spec.user)  # until commit: no disable or other create between
        if user.disabled_at is not None:
            if minter is not None:
                raise Conflict(f"no token can be created for {spec.user}: "
                               + users.refusal(spec.user))
            user.disabled_at, user.disabled_by = None, None
            audit.record(s, actor, "user.enable", spec.user, address=address,
                         detail="enabled again to receive the server's own token for it")
        if limits is not None:
            _check_live(s, spec.user, limits.max_live, now)
        s.add(row)
        asked = None if spec.expires_in_s is None else now + spec.expires_in_s
        audit.record(s, actor, "token.create", f"{spec.user}/{new.id}", address=address,
                     detail="" if expires_at == asked else "lifetime shortened to the most "
                     "allowed")
    return TokenCreated(**_out(row).model_dump(), token=new.value)


def _check_live(s: Session, user: str, most: int, now: float) -> None:
    live = s.execute(select(func.count()).select_from(TokenRow).where(
        TokenRow.user == user, TokenRow.revoked_at.is_(None),
        or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > now))).scalar_one()
    if live >= most:
        raise Conflict(f"{user} already holds {live} live tokens, the most a user may "
                       f"(max_tokens_per_user = {most}); revoke one first (`fairpool token "
                       f"list` shows them, `fairpool token revoke ID` revokes one) or wait "
                       f"for one to expire")


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
    few seconds; a revocation (or a user disabled) through this server takes effect at once,
    through another server sharing the database within ``cache_ttl_s``."""

    def __init__(self, store: Store, oidc: OidcVerifier | None = None,
                 cache_ttl_s: float = 5.0, failures_per_s: float = 20.0) -> None:
        self.store = store
        self.oidc = oidc
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, _Cached] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._failures = audit.Throttle(failures_per_s)

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
            off = None if row is None else users.disabled(s, row.user)
        if row is None or not tok.matches(row.salt, row.hash, secret):
            self._fail("-", f"unknown token {token_id}", address)
            raise Unauthenticated("the token is not valid")
        if off is not None:
            self._fail(row.user, f"token {token_id} of a disabled user", address)
            raise Unauthenticated(f"token {token_id} was revoked: " + users.refusal(row.user))
        if row.revoked_at is not None:
            self._fail(row.user, f"revoked token {token_id}", address)
            raise Unauthenticated(f"token {token_id} was revoked")
        if row.expires_at is not None and row.expires_at <= now:
            self._fail(row.user, f"expired token {token_id}", address)
            raise Unauthenticated(f"token {token_id} has expired; create a new one")
        self._touch(token_id, now)
        subjects = subjects_of(row.user, ())
        return Principal(user=row.user, bindings=bindings_of(self.store, subjects),
                         token_id=token_id, via="token", subjects=subjects,
                         mint_until=row.expires_at, from_oidc=row.origin == "oidc"
                         ), row.expires_at

    def _jwt(self, value: str, address: str) -> tuple[Principal, float | None]:
        assert self.oidc is not None
        try:
            ident = self.oidc.verify(value)
        except OidcError as exc:
            self._fail("-", str(exc), address)
            raise Unauthenticated(str(exc)) from None
        with self.store.session() as s:
            off = users.disabled(s, ident.user)
        if off is not None:
            self._fail(ident.user, "login of a disabled user", address)
            raise UserDisabled(users.refusal(ident.user))
        subjects = subjects_of(ident.user, ident.groups)
        until = ident.expires_at if ident.expires_at is not None else time.time()
        return Principal(user=ident.user, bindings=bindings_of(self.store, subjects),
                         groups=ident.groups, via="oidc", subjects=subjects,
                         mint_until=until, from_oidc=True), ident.expires_at

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
        extra = self._failures.admit("login")
        if extra is None:
            return
        detail = why + (f" ({extra} more failures not recorded)" if extra else "")
        audit.record_now(self.store, actor, "login", outcome="denied", detail=detail,
                         address=address)
