"""Engines, sessions and migrations.

``sqlite:///…`` gets WAL journaling, a busy timeout and foreign keys; ``postgresql+psycopg://…``
is used as is. :func:`migrate` applies the Alembic migrations shipped in the package, so a new or
old database is brought to the current schema at start.
"""

from __future__ import annotations

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


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """The database handle passed to services and loops."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def bump(session: Session) -> None:
        """Count a change that the scheduler must see (snapshot generation)."""
        session.execute(
            update(MetaRow).where(MetaRow.key == "generation").values(value=MetaRow.value + 1)
        )

    def generation(self, session: Session) -> int:
        value = session.execute(
            select(MetaRow.value).where(MetaRow.key == "generation")
        ).scalar_one_or_none()
        return int(value or 0)
