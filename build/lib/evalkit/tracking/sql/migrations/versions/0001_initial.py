"""The first schema: experiments, runs, params, tags, metric history and latest metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(500), nullable=False, unique=True),
        sa.Column("artifact_location", sa.Text, nullable=False),
        sa.Column("lifecycle_stage", sa.String(32), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id"), nullable=False),
        sa.Column("run_name", sa.String(250), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger),
        sa.Column("lifecycle_stage", sa.String(32), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("parent_run_id", sa.String(32)),
        sa.Column("user_id", sa.String(250)),
    )
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_time"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        op.create_index(f"ix_{name}_key_value", name, ["key", "value"])
    op.create_table(
        "metric_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("is_nan", sa.Boolean, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_metric_history_run_key", "metric_history", ["run_id", "key", "step", "timestamp"])
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("is_nan", sa.Boolean, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])


def downgrade() -> None:
    for name in ("latest_metrics", "metric_history", "tags", "params", "runs", "experiment_tags", "experiments"):
        op.drop_table(name)
