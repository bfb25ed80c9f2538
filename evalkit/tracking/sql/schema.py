"""Tables of the SQL tracking store.

Times are integer milliseconds since the epoch. Metric values are stored with an ``is_nan`` flag
and a NULL value for NaN, because SQLite turns NaN into NULL anyway and PostgreSQL sorts NaN above
every number: NULL gives both backends the same search semantics (NaN never matches).
Changing this file needs a new migration in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=False),
    Column("lifecycle_stage", String(32), nullable=False, default="active"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("run_name", String(250), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("lifecycle_stage", String(32), nullable=False, default="active"),
    Column("artifact_uri", Text, nullable=False),
    Column("parent_run_id", String(32)),
    Column("user_id", String(250)),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

def _run_key_values(name: str) -> Table:
    """Params and tags: one text value per run and key."""
    return Table(
        name,
        metadata,
        Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
        Column("key", String(250), primary_key=True),
        Column("value", Text, nullable=False),
        Index(f"ix_{name}_key_value", "key", "value"),
    )


params = _run_key_values("params")
tags = _run_key_values("tags")

# Full history: one row per logged value.
metric_history = Table(
    "metric_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_metric_history_run_key", "run_id", "key", "step", "timestamp"),
)

# The value search and get_run see: the one with the highest step, then the latest timestamp.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

# Idempotency keys of client requests served by the tracking server (``idempotency.py``): one row
# per write transaction of a request, committed with it, holding the result a retry gets back.
request_keys = Table(
    "request_keys",
    metadata,
    Column("request_key", String(100), primary_key=True),
    Column("result", Text, nullable=False),
    Column("created_time", BigInteger, nullable=False, index=True),
)

# The tracking server's access tokens (evalkit/server/auth): only a SHA-256 of each token is kept.
# A name is unique among the tokens not revoked, so a revoked name can be issued again.
auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
    Column("last_used", BigInteger),
    Column("revoked_at", BigInteger),
    Index("ux_auth_tokens_active_name", "name", unique=True,
          sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
)

# Secrets every server worker shares (the key signing the UI's session cookies), made once.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created", BigInteger, nullable=False),
)

# ---- the model registry (migration 0004) ---------------------------------------------------

# ``next_version`` makes version numbers never reused, even after a version is deleted.
# ``evidence_required`` is the canonical rule, comma-separated: "Production,@champion".
registered_models = Table(
    "registered_models",
    metadata,
    Column("model_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("evidence_required", Text, nullable=False, default=""),
    Column("next_version", Integer, nullable=False, default=1),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.model_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.model_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("current_stage", String(20), nullable=False),
    Column("source", Text, nullable=False),
    Column("run_id", String(32)),
    Column("bundle_hash", String(64), nullable=False),
    Column("flavor", String(100), nullable=False),
    Column("user_id", String(250)),
    Column("status", String(20), nullable=False),
    Index("ix_model_versions_run_id", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("model_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(["model_id", "version"], ["model_versions.model_id", "model_versions.version"]),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.model_id"), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

# Append-only: kept when a version or model is deleted (no foreign key), so the record of what
# was in Production when outlives what it describes.
model_history = Table(
    "model_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("version", Integer),
    Column("alias", String(255)),
    Column("from_value", String(500)),
    Column("to_value", String(500)),
    Column("timestamp", BigInteger, nullable=False),
    Column("user_id", String(250)),
    Column("evidence_run_id", String(32)),
    Index("ix_model_history_model", "model_id", "id"),
)
