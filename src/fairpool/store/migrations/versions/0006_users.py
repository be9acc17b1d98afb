"""Users an admin can disable, and where a token came from (tokens created with an identity
provider's login must not outlive it).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user", sa.String(length=253), nullable=False),
        sa.Column("disabled_at", sa.Float(), nullable=True),
        sa.Column("disabled_by", sa.String(length=253), nullable=True),
        sa.PrimaryKeyConstraint("user"),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("origin")
    op.drop_table("users")
