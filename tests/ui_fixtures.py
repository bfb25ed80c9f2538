"""Session fixtures for the UI's tests: one seeded store (tests/ui_seed.py) and one real uvicorn
server on 127.0.0.1 serving ``mount_ui`` over it. At merge the server helper's ``create_app``
replaces ``ui_app`` here; the tests only need ``ui_server.url`` and the store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from ui_seed import Seeded, seed

from evalkit.tracking.sql.store import SqlStore
from evalkit.ui import mount_ui


@dataclass
class Principal:
    name: str
    role: str


def ui_app(store: SqlStore, artifact_root: str, principal: Principal | None = None,
           csrf_token: str | None = None) -> FastAPI:
    """The UI over ``store``; with ``principal``, every request is that user (as the auth
    middleware would set it), with ``csrf_token`` for the templates to embed."""
    app = FastAPI()
    app.state.store = store
    app.state.default_artifact_root = artifact_root
    if principal is not None or csrf_token is not None:
        @app.middleware("http")
        async def authenticate(request: Request, call_next: Callable[[Request], Any]) -> Any:
            if principal is not None:
                request.state.principal = principal
            if csrf_token is not None:
                request.state.csrf_token = csrf_token
            return await call_next(request)
    mount_ui(app)
    return app


@dataclass
class UiServer:
    url: str
    store: SqlStore
    seeded: Seeded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seeded, SqlStore]]:
    seeded = seed(Path(tmp_path_factory.mktemp("ui")))
    store = SqlStore.from_uri(seeded.uri)
    yield seeded, store
    store.close()


@pytest.fixture(scope="session")
def ui_server(seeded_store: tuple[Seeded, SqlStore]) -> Iterator[UiServer]:
    seeded, store = seeded_store
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(ui_app(store, seeded.artifact_root), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI's uvicorn server did not start")
        time.sleep(0.02)
    try:
        yield UiServer(f"http://127.0.0.1:{port}", store, seeded)
    finally:
        server.should_exit = True
        thread.join(10)
