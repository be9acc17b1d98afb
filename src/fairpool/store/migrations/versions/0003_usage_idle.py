"""Usage accounting, GPU utilisation and idle-GPU policies.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("department", sa.String(length=63), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Float(), nullable=False),
        sa.Column("util", sa.Float(), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_usage_span", "usage", ["start", "end"])
    op.create_index("ix_usage_job", "usage", ["job_id"])
    op.create_index("ix_job_events_kind", "job_events", ["kind"])
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("idle_action", sa.String(length=16), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("idle_threshold", sa.Float(), nullable=False,
                                   server_default="0.05"))
        batch.add_column(sa.Column("idle_after_s", sa.Float(), nullable=False,
                                   server_default="1800"))
        batch.add_column(sa.Column("idle_stop_after_s", sa.Float(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("gpu_util", sa.Float(), nullable=True))
        batch.add_column(sa.Column("util_simulated", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("gpu_memory_used_mib", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idle_since", sa.Float(), nullable=True))
        batch.add_column(sa.Column("idle_flagged", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("not_before", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in ("not_before", "idle_flagged", "idle_since", "gpu_memory_used_mib",
                       "util_simulated", "gpu_util"):
            batch.drop_column(column)
    with op.batch_alter_table("queues") as batch:
        for column in ("idle_stop_after_s", "idle_after_s", "idle_threshold", "idle_action"):
            batch.drop_column(column)
    op.drop_index("ix_job_events_kind", table_name="job_events")
    op.drop_index("ix_usage_job", table_name="usage")
    op.drop_index("ix_usage_span", table_name="usage")
    op.drop_table("usage")
