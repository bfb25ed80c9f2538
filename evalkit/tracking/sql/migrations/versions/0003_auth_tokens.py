"""The tracking server's access tokens (stored as hashes) and the secrets its workers share.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_tokens",
        sa.Column("token_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("last_used", sa.BigInteger),
        sa.Column("revoked_at", sa.BigInteger),
    )
    # A name is unique among active tokens only: a revoked name can be issued again.
    active = sa.text("revoked_at IS NULL")
    op.create_index("ux_auth_tokens_active_name", "auth_tokens", ["name"], unique=True,
                    sqlite_where=active, postgresql_where=active)
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_index("ux_auth_tokens_active_name", table_name="auth_tokens")
    op.drop_table("auth_tokens")
