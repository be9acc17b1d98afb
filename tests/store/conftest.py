"""The same store tests on a real SQLite file and on the machine's PostgreSQL (a fresh database
per test run, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.store.db import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fairpool.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    s = Store(url)
    if request.param == "postgresql":  # one database for the run: start each test empty
        from fairpool.store.models import Base

        with s.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    s.migrate()
    try:
        yield s
    finally:
        s.close()
