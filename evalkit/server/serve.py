"""Start the tracking server on uvicorn: migrate once, make the first token, then serve.

Migrations run here, in the parent process, before uvicorn starts (and forks) its workers, so
the workers find the schema current; the migration itself also holds a lock (PostgreSQL advisory
lock, SQLite write lock), so servers started at once on one database are safe too.
"""

from __future__ import annotations

import os

from evalkit.errors import MissingExtra
from evalkit.server.config import CONFIG_ENV, ServerConfig

GRACEFUL_SHUTDOWN_SECONDS = 30


def prepare(config: ServerConfig) -> str | None:
    """Migrate the store and forget old idempotency keys; return a new admin token to print once
    when tokens are required and none exists yet."""
    from evalkit.server.app import open_server_store
    from evalkit.server.auth import ensure_admin_token
    from evalkit.tracking.sql.engine import write_transaction
    from evalkit.tracking.sql.idempotency import forget_old_keys

    store = open_server_store(config)  # runs the migrations
    try:
        write_transaction(store.engine, forget_old_keys)
    finally:
        store.close()
    if not config.auth_enabled:
        return None
    return ensure_admin_token(config.backend_store_uri)


def serve(config: ServerConfig, host: str, port: int, workers: int = 1) -> None:
    """Run uvicorn until SIGINT/SIGTERM; requests in flight get ``GRACEFUL_SHUTDOWN_SECONDS`` to finish."""
    try:
        import uvicorn
    except ImportError:
        raise MissingExtra("evalkit server", "server", "uvicorn") from None
    os.environ[CONFIG_ENV] = config.to_env()  # each worker process builds its app from it
    uvicorn.run(
        "evalkit.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        access_log=False,  # ours (evalkit.server.access) leaves out query strings and headers
        log_config=None, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, server_header=False,
        proxy_headers=True,
    )
