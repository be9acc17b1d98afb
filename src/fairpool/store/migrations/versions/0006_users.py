"""Users an admin can disable, and where a token came from (tokens created with an identity
provider's login must not outlive it). Tokens that non-admins created for themselves without an
expiry, before lifetimes were bounded, now end 90 days after this upgrade (the default
``max_token_lifetime_s``), so that no identity created earlier stays permanent.

Revision ID: 0006
Revises: 0005
"""

import time

import sqlalchemy as sa
from alembic import op

MAX_LIFETIME_S = 90 * 86400  # max_token_lifetime_s's default

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
    tokens = sa.table("api_tokens", sa.column("user", sa.String), sa.column("created_by",
                      sa.String), sa.column("expires_at", sa.Float))
    bindings = sa.table("role_bindings", sa.column("subject", sa.String),
                        sa.column("role", sa.String), sa.column("scope", sa.String))
    admins = sa.select(bindings.c.subject).where(bindings.c.role == "admin",
                                                 bindings.c.scope == "*")
    op.execute(tokens.update().where(
        tokens.c.expires_at.is_(None), tokens.c.created_by == tokens.c.user,
        tokens.c.user.not_in(admins)).values(expires_at=time.time() + MAX_LIFETIME_S))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("origin")
    op.drop_table("users")
