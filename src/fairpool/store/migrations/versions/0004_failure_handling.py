"""Failure handling: retries, max runtime, node cordons with a reason and an end.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("max_retries", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("max_runtime_s", sa.Float(), nullable=True))
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("default_max_runtime_s", sa.Float(), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("cordon_until", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cordon_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("cordon_reason")
        batch.drop_column("cordon_until")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("default_max_runtime_s")
    with op.batch_alter_table("jobs") as batch:
        for column in ("max_runtime_s", "retries", "max_retries"):
            batch.drop_column(column)
