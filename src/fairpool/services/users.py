"""Disabling and enabling users (admins). Disabling revokes every token the user holds, and
while it lasts no token can be created for the user and its identity provider's logins are
refused; enabling lets the user in again with new tokens (the revoked ones stay revoked).

The user's row in ``users`` is also the lock that creating a token takes (see
:func:`locked`), so a token can neither be created for a user being disabled nor slip past
the cap on live tokens when several are created at once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from fairpool.domain.words import plural
from fairpool.schemas.access import GROUP_PREFIX, USER_PATTERN, UserOut
from fairpool.services import audit
from fairpool.services.errors import Conflict, Invalid
from fairpool.store.db import Store
from fairpool.store.models import TokenRow, UserRow

USER = re.compile(USER_PATTERN)


def _out(row: UserRow, revoked: int = 0) -> UserOut:
    return UserOut(user=row.user, disabled=row.disabled_at is not None,
                   disabled_at=row.disabled_at, disabled_by=row.disabled_by,
                   tokens_revoked=revoked)


def locked(s: Session, user: str) -> UserRow:
    """The user's row (made if missing), locked until the transaction ends: on PostgreSQL
    with ``FOR UPDATE``; on SQLite every write transaction holds the store's write lock."""
    dialect = s.get_bind().dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    s.execute(make(UserRow).values(user=user).on_conflict_do_nothing(
        index_elements=[UserRow.user]))
    return s.execute(select(UserRow).where(UserRow.user == user).with_for_update()
                     .execution_options(populate_existing=True)).scalar_one()


def disabled(s: Session, user: str) -> UserRow | None:
    """The user's row when the user is disabled, else None."""
    row = s.get(UserRow, user)
    return row if row is not None and row.disabled_at is not None else None


def refusal(user: str) -> str:
    return (f"user {user} is disabled; an admin can enable it again with `fairpool user "
            f"enable {user}` (its old tokens stay revoked: create a new one)")


def _check(user: str) -> None:
    if not USER.fullmatch(user) or user.startswith(GROUP_PREFIX):
        raise Invalid(f"user {user[:80]!r} is not a user name (pattern {USER_PATTERN}, not "
                      f"starting with {GROUP_PREFIX})")


def disable(store: Store, user: str, actor: str, address: str = "") -> UserOut:
    """Disable ``user`` and revoke all its tokens that are not revoked yet."""
    _check(user)
    if user == actor:
        raise Conflict(f"{actor} cannot disable itself; another admin can")
    now = time.time()
    with store.writing() as s:
        row = locked(s, user)
        if row.disabled_at is not None:
            raise Conflict(f"user {user} is already disabled (since "
                           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(row.disabled_at))}"
                           f" by {row.disabled_by}); `fairpool user enable {user}` undoes it")
        row.disabled_at, row.disabled_by = now, actor
        revoked = len(s.execute(update(TokenRow).where(
            TokenRow.user == user, TokenRow.revoked_at.is_(None)).values(revoked_at=now)
            .returning(TokenRow.id)).all())
        audit.record(s, actor, "user.disable", user, detail=f"{plural(revoked, 'token')} revoked",
                     address=address)
        return _out(row, revoked)


def enable(store: Store, user: str, actor: str, address: str = "") -> UserOut:
    """Let a disabled user in again; its revoked tokens stay revoked."""
    _check(user)
    with store.writing() as s:
        row = locked(s, user)
        if row.disabled_at is None:
            raise Conflict(f"user {user} is not disabled")
        row.disabled_at, row.disabled_by = None, None
        audit.record(s, actor, "user.enable", user, address=address)
        return _out(row)


def list_disabled(store: Store) -> list[UserOut]:
    """The users disabled now."""
    with store.session() as s:
        rows = s.execute(select(UserRow).where(UserRow.disabled_at.is_not(None))
                         .order_by(UserRow.user)).scalars()
        return [_out(r) for r in rows]
