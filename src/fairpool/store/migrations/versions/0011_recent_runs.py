"""An index for the recent successful runs each project's expected run time is read from
(``services.usage.expected_runtimes``: by state, newest finish first), which the control loop
reads every minute and the start-time estimates on a miss.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_state_finished", "jobs", ["state", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_finished", table_name="jobs")
