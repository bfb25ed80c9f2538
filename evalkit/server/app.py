"""``create_app(config)``: the tracking server's ASGI app (FastAPI), ready for uvicorn.

It opens the SQL store named by ``config.backend_store_uri`` (new experiments' artifacts under
``config.default_artifact_root``), installs authentication and the web UI, and closes the store when uvicorn shuts down,
after the requests in flight have finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from evalkit import __version__
from evalkit.server.auth import install_auth
from evalkit.server.config import ServerConfig
from evalkit.server.errors import install_error_handlers
from evalkit.server.middleware import AccessLog, BodySizeLimit
from evalkit.server.routes import artifacts, meta, mlflow, tracking
from evalkit.tracking.sql.engine import write_transaction
from evalkit.tracking.sql.idempotency import forget_old_keys
from evalkit.tracking.sql.store import SqlStore
from evalkit.tracking.uri import parse_tracking_uri
from evalkit.ui import mount_ui

KEY_CLEANUP_SECONDS = 3600
DESCRIPTION = """The evalkit tracking server: experiments, runs, params, metrics, tags and artifacts.

Errors are JSON `{"error_code": ..., "message": ...}` with evalkit's codes (INVALID_ARGUMENT 400,
NOT_FOUND 404, ALREADY_EXISTS and INVALID_STATE 409, REQUEST_TOO_LARGE 413, STORE_UNAVAILABLE 503).
Metric values are numbers or the strings "NaN", "Infinity", "-Infinity". Writes accept an
`Idempotency-Key` header: a retry with the same key gets the first answer and writes nothing again.
Send `Authorization: Bearer <token>` when the server requires tokens."""


def open_server_store(config: ServerConfig) -> SqlStore:
    """The store the server serves: migrated to the current schema, artifacts under the server's root."""
    location = parse_tracking_uri(config.backend_store_uri)
    return SqlStore(dataclasses.replace(location, default_artifact_root=config.default_artifact_root))


def create_app(config: ServerConfig) -> FastAPI:
    """The server's app: the REST API, authentication (tokens when ``config.auth_enabled``) and the web UI."""
    store = open_server_store(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        cleaner = asyncio.create_task(_forget_old_keys_hourly(store))
        yield
        cleaner.cancel()
        store.close()  # uvicorn has let the requests in flight finish: every write is committed

    app = FastAPI(title="evalkit tracking server", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json", redoc_url=None)
    app.state.config = config
    app.state.store = store
    app.state.default_artifact_root = app.state.artifact_root = config.default_artifact_root
    app.state.artifact_repository_for = artifacts.artifact_repository_for
    install_error_handlers(app)
    app.include_router(meta.router)
    app.include_router(tracking.router)
    app.include_router(artifacts.router)
    app.include_router(mlflow.router)
    install_auth(app, engine_or_store_uri=store.engine, enabled=config.auth_enabled,
                 loopback_only=config.loopback_only)
    mount_ui(app)  # last: it serves "/"
    # Outermost first: the access log sees every answer, the 413s of the size limit included.
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes, max_artifact_bytes=config.max_artifact_bytes)
    if config.access_log:
        app.add_middleware(AccessLog)
    return app


async def _forget_old_keys_hourly(store: SqlStore) -> None:
    while True:
        await asyncio.sleep(KEY_CLEANUP_SECONDS)
        try:
            await run_in_threadpool(write_transaction, store.engine, forget_old_keys)
        except Exception:  # noqa: BLE001 - a store outage: try again next hour, the log says why
            logging.getLogger("evalkit.server").warning("could not delete old idempotency keys", exc_info=True)


def app_from_env() -> FastAPI:
    """The app of the config the CLI put in ``$EVALKIT_SERVER_CONFIG``: uvicorn's factory in each worker."""
    log_to_stderr()
    return create_app(ServerConfig.from_env())


def log_to_stderr() -> None:
    """The access log as JSON lines on stderr, and the server's own messages as plain lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("evalkit.server.access", "evalkit.server", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
            logger.propagate = False
