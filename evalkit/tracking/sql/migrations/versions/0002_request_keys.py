"""Idempotency keys of the tracking server's write requests (exactly-once retries).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_keys",
        sa.Column("request_key", sa.String(100), primary_key=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_request_keys_created_time", "request_keys", ["created_time"])


def downgrade() -> None:
    op.drop_index("ix_request_keys_created_time", "request_keys")
    op.drop_table("request_keys")
