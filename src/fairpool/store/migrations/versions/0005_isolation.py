"""Isolation: container image and mounts of jobs, how each node confines jobs, and the Unix
accounts users' jobs run as.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("image", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("mounts", sa.JSON(), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("isolation", sa.JSON(), nullable=True))
    op.create_table(
        "user_accounts",
        sa.Column("user", sa.String(length=253), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=253), nullable=True),
        sa.PrimaryKeyConstraint("user"),
    )


def downgrade() -> None:
    op.drop_table("user_accounts")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("isolation")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("mounts")
        batch.drop_column("image")
