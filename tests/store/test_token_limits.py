"""The cap on live tokens and disabling users hold under concurrency, on SQLite and on
PostgreSQL: creating a token locks the user's row, so concurrent creates never overshoot the
cap and none slips in beside a disable."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, text

from fairpool.auth.rbac import Principal
from fairpool.schemas.access import TokenCreate
from fairpool.services import tokens, users
from fairpool.services.errors import Conflict
from fairpool.store.db import Store, migrate
from fairpool.store.models import Base, TokenRow

CAP = 5
THREADS = 20


def _create(store: Store, user: str) -> str:
    try:
        made = tokens.create(store, user, TokenCreate(user=user), minter=Principal(user=user),
                             limits=tokens.TokenLimits(max_live=CAP))
    except Conflict as exc:
        return exc.message
    return made.id


def test_concurrent_creates_never_pass_the_cap(store: Store) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda _: _create(store, "una"), range(THREADS)))
    made = [r for r in results if "live tokens" not in r]
    assert len(made) == CAP, results
    assert all(f"una already holds {CAP} live tokens" in r for r in results if r not in made)
    with store.session() as s:
        assert len(s.execute(select(TokenRow).where(TokenRow.user == "una")).all()) == CAP
    # a revoked token frees its slot; another user has a cap of its own
    tokens.revoke(store, "una", made[0])
    assert "live tokens" not in _create(store, "una")
    assert "live tokens" not in _create(store, "vera")


def test_no_token_is_created_beside_a_disable(store: Store) -> None:
    _create(store, "walt")

    def create_or_disable(i: int) -> str:
        if i == THREADS // 2:
            return f"disabled {users.disable(store, 'walt', 'admin').tokens_revoked}"
        return _create(store, "walt")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(create_or_disable, range(THREADS)))
    assert any(r.startswith("disabled") for r in results)
    with store.session() as s:
        live = s.execute(select(TokenRow.id).where(TokenRow.user == "walt",
                                                   TokenRow.revoked_at.is_(None))).all()
    assert live == [], f"tokens created beside the disable stayed live: {live}"
    assert "walt is disabled" in _create(store, "walt")
    users.enable(store, "walt", "admin")
    assert "disabled" not in _create(store, "walt")


def test_the_upgrade_ends_immortal_tokens_that_non_admins_made_themselves(store: Store) -> None:
    """Before lifetimes were bounded a researcher could make a token that never expires; the
    upgrade (0006) gives those 90 days. Tokens an admin made, and admins' own, stay as they
    were."""
    with store.engine.begin() as conn:  # back to the schema before the upgrade
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate(store.engine, "0005")
    rows = [("t-self", "rita", "rita", None), ("t-given", "rita", "admin", None),
            ("t-admin", "admin", "admin", None), ("t-dated", "rita", "rita", 1e10)]
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO role_bindings (subject, role, scope, created_by, "
                          "created_at) VALUES ('admin', 'admin', '*', 'system', 0)"))
        for token_id, user, by, expires in rows:
            conn.execute(text(
                'INSERT INTO api_tokens (id, "user", salt, hash, description, created_by, '
                "created_at, expires_at) VALUES (:id, :user, 's', 'h', '', :by, 0, :exp)"),
                {"id": token_id, "user": user, "by": by, "exp": expires})
    before = time.time()
    migrate(store.engine)
    with store.session() as s:
        got = dict(s.execute(select(TokenRow.id, TokenRow.expires_at)).all())
    assert got["t-self"] is not None
    assert before + 90 * 86400 - 60 <= got["t-self"] <= time.time() + 90 * 86400
    assert got["t-given"] is None and got["t-admin"] is None and got["t-dated"] == 1e10
