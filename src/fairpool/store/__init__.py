"""Persistence: SQLAlchemy 2 models, engine set-up and Alembic migrations, for SQLite (the
embedded default) and PostgreSQL (the scale-out store)."""
