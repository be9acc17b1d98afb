"""Alembic environment: runs on the connection fairpool passes in (see fairpool.store.db)."""

from __future__ import annotations

from alembic import context

from fairpool.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - fairpool always passes a connection
    raise RuntimeError("fairpool migrations run through fairpool.store.db.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
