"""One lifecycle: a job whose workers are being stopped is in state ``stopping`` (it was
``running`` or ``starting`` with a stop reason); an eviction event names its cause in a column
(metrics no longer parse the message); and queues store the allocation the scheduler's last plan
gave them beside their fair shares.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ALLOCATED = ("alloc_gpu", "alloc_cpu", "alloc_memory")


def upgrade() -> None:
    with op.batch_alter_table("job_events") as batch:
        batch.add_column(sa.Column("cause", sa.String(length=32), nullable=True))
    with op.batch_alter_table("queues") as batch:
        for name in ALLOCATED:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
    jobs = sa.table("jobs", sa.column("state", sa.String), sa.column("stop_reason", sa.String))
    op.execute(jobs.update().where(jobs.c.stop_reason.is_not(None),
                                   jobs.c.state.in_(("starting", "running")))
               .values(state="stopping"))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, message FROM job_events WHERE kind = 'evicted'"))
    causes: dict[str, list[int]] = {}
    for event_id, message in rows:
        cause = (message or "").split(":", 1)[0].strip()[:32] or "other"
        causes.setdefault(cause, []).append(event_id)
    ids = sa.table("job_events", sa.column("id", sa.Integer), sa.column("cause", sa.String))
    for cause, wanted in causes.items():
        for i in range(0, len(wanted), 500):
            op.execute(ids.update().where(ids.c.id.in_(wanted[i:i + 500])).values(cause=cause))


def downgrade() -> None:
    jobs = sa.table("jobs", sa.column("state", sa.String))
    op.execute(jobs.update().where(jobs.c.state == "stopping").values(state="running"))
    with op.batch_alter_table("queues") as batch:
        for name in ALLOCATED:
            batch.drop_column(name)
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("cause")
