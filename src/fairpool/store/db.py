"""Engines, sessions and migrations.

``sqlite:///…`` gets WAL journaling, a busy timeout and foreign keys; ``postgresql+psycopg://…``
is used as is. :func:`migrate` applies the Alembic migrations shipped in the package, so a new or
old database is brought to the current schema at start.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from fairpool.store.models import MetaRow

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'fairpool.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine, to: str = "head") -> None:
    """Upgrade the schema to revision ``to`` (the latest by default)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, to)


class Store:
    """The database handle passed to services and loops."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.cache: dict[str, Any] = {}  # small read caches of services, per database
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if url.startswith("sqlite") else nullcontext()
        )
        self._lock_fd: int | None = None
        path = self.engine.url.database if url.startswith("sqlite") else None
        if path and path != ":memory:":
            self._lock_fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)

    def migrate(self) -> None:
        migrate(self.engine)

    def session(self) -> Session:
        return self.sessions()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction. SQLite has one writer at a time: writers of this process queue
        on a lock, and processes on an advisory file lock, instead of spinning in SQLite's busy
        handler, which wastes most of the time under load."""
        with self._write_lock, self._file_lock(), self.sessions() as s, s.begin():
            yield s

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def bump(session: Session) -> int:
        """Count a change that the scheduler must see; returns the new generation, which the
        transaction stamps on every job it changes (``JobRow.seq``). Writers serialise on this
        row, so generations follow commit order."""
        return int(session.execute(
            update(MetaRow).where(MetaRow.key == "generation")
            .values(value=MetaRow.value + 1).returning(MetaRow.value)
        ).scalar_one())

    def generation(self, session: Session) -> int:
        value = session.execute(
            select(MetaRow.value).where(MetaRow.key == "generation")
        ).scalar_one_or_none()
        return int(value or 0)
