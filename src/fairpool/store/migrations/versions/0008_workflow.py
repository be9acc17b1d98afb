"""The researcher's workflow: job arrays and sweeps (a ``job_arrays`` table; tasks are jobs
with an array id, index, cap and parameters), dependencies between jobs (``depends`` and
``deps_waiting``), lookups by name, and deleted queues kept for their history.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_arrays",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("project", sa.String(length=63), sa.ForeignKey("queues.name"),
                  nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("indices", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.Column("submitted_by", sa.String(length=253), nullable=True),
        sa.Column("client_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.UniqueConstraint("project", "client_key", name="uq_job_arrays_project_client_key"),
    )
    # plain ADD COLUMN and CREATE INDEX (SQLite does both in place; a batch would copy the
    # jobs table, which other tables' foreign keys refer to)
    op.add_column("jobs", sa.Column("array_id", sa.String(length=32), nullable=True))
    op.add_column("jobs", sa.Column("array_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("array_cap", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("params", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("depends", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("deps_waiting", sa.Boolean(), nullable=False,
                                    server_default=sa.false()))
    op.create_index("ix_jobs_array", "jobs", ["array_id", "array_index"])
    op.create_index("ix_jobs_name", "jobs", ["name"])
    op.add_column("queues", sa.Column("deleted_at", sa.Float(), nullable=True))

def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_name")
        batch.drop_index("ix_jobs_array")
        for column in ("deps_waiting", "depends", "params", "array_cap", "array_index",
                       "array_id"):
            batch.drop_column(column)
    op.drop_table("job_arrays")
