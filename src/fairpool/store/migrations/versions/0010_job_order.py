"""Order inside a project: a project's ``job_order`` (fifo, priority or attained; NULL: the
pool's default), and per job the GPU-seconds of service its earlier runs received
(``attained_gpu_s``) and when it last went back to waiting (``queued_at``), which the
attained-service order reads.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("job_order", sa.String(length=16), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attained_gpu_s", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("queued_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queued_at")
        batch.drop_column("attained_gpu_s")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("job_order")
