"""Persistence: SQLAlchemy 2 models, engine set-up and Alembic migrations, for SQLite (the
embedded default) and PostgreSQL (the scale-out store)."""

# the webhook tables join Base.metadata whenever any of the store's models are imported
from fairpool.store import webhook_models as _webhook_models  # noqa: F401
