"""The Unix accounts users' jobs run as (``run_as = "user"``): map, unmap, list, look up.

A user without a mapping runs as the account of the same name. A mapping is an admin's
statement that the user may act as that account on the nodes, so it is audited like a role
change; root is never an account a job runs as.
"""

from __future__ import annotations

import pwd
import re
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.schemas.access import NOT_ROOT, USER_PATTERN, AccountOut, account_problem
from fairpool.services import audit
from fairpool.services.errors import Invalid, NotFound
from fairpool.store.db import Store
from fairpool.store.models import UserAccountRow

USER = re.compile(USER_PATTERN)  # a local user or one of the identity provider


def _out(r: UserAccountRow) -> AccountOut:
    return AccountOut(user=r.user, account=r.account, created_at=r.created_at,
                      created_by=r.created_by)


def _check_user(user: str) -> None:
    if not USER.fullmatch(user):
        raise Invalid(f"user {user[:80]!r} is not a user name (pattern {USER.pattern})")


def _check_account(account: str) -> None:
    problem = account_problem(account)
    if problem is not None:
        raise Invalid(problem)
    try:  # another name for uid 0 on this machine (toor, ...) is root too
        uid = pwd.getpwnam(account).pw_uid
    except KeyError:  # not known here: the nodes may know it
        return
    if uid == 0:
        raise Invalid(f"account {account} is uid 0 on this machine: {NOT_ROOT}")


def map_account(store: Store, user: str, account: str, actor: str,
                address: str = "") -> AccountOut:
    """Run ``user``'s jobs as ``account`` (replacing an earlier mapping)."""
    _check_user(user)
    _check_account(account)
    with store.writing() as s:
        row = s.get(UserAccountRow, user)
        before = None if row is None else row.account
        if row is None:
            row = UserAccountRow(user=user, account=account, created_at=time.time(),
                                 created_by=actor)
            s.add(row)
        else:
            row.account, row.created_at, row.created_by = account, time.time(), actor
        s.flush()
        audit.record(s, actor, "account.map", f"{user}:{account}",
                     detail="" if before is None else f"was {before}", address=address)
        return _out(row)


def unmap(store: Store, user: str, actor: str, address: str = "") -> AccountOut:
    """Remove ``user``'s mapping (its jobs run as the account of its own name again)."""
    _check_user(user)
    with store.writing() as s:
        row = s.get(UserAccountRow, user)
        if row is None:
            raise NotFound(f"user {user} has no account mapping; `fairpool user list` shows "
                           f"them")
        out = _out(row)
        s.delete(row)
        audit.record(s, actor, "account.unmap", f"{user}:{row.account}", address=address)
    return out


def list_accounts(store: Store) -> list[AccountOut]:
    with store.session() as s:
        rows = s.execute(select(UserAccountRow).order_by(UserAccountRow.user)).scalars()
        return [_out(r) for r in rows]


def account_of(s: Session, user: str) -> str | None:
    """The account ``user`` is mapped to (None: none, so the account of its own name)."""
    row = s.get(UserAccountRow, user)
    return None if row is None else row.account
