"""The model registry: registered models, versions, tags, aliases and their history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("model_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("evidence_required", sa.Text, nullable=False),
        sa.Column("next_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "registered_model_tags",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.model_id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.model_id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("current_stage", sa.String(20), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("bundle_hash", sa.String(64), nullable=False),
        sa.Column("flavor", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(250)),
        sa.Column("status", sa.String(20), nullable=False),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_table(
        "model_version_tags",
        sa.Column("model_id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["model_id", "version"], ["model_versions.model_id", "model_versions.version"]),
    )
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.model_id"), primary_key=True),
        sa.Column("alias", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "model_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("alias", sa.String(255)),
        sa.Column("from_value", sa.String(500)),
        sa.Column("to_value", sa.String(500)),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(250)),
        sa.Column("evidence_run_id", sa.String(32)),
    )
    op.create_index("ix_model_history_model", "model_history", ["model_id", "id"])


def downgrade() -> None:
    for name in ("model_history", "model_aliases", "model_version_tags", "model_versions", "registered_model_tags",
                 "registered_models"):
        op.drop_table(name)
