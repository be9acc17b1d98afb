"""Fixtures shared by the test packages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_pg_database() -> Iterator[str]:
    """A new database on the machine's PostgreSQL, dropped afterwards."""
    name = f"fairpool_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - the machine runs PostgreSQL
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required for the store tests: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.images import build_busybox_image

    yield from build_busybox_image(tmp_path_factory)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    yield from fresh_pg_database()
