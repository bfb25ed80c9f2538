"""Session fixtures for the UI's tests: the UI's data (tests/ui_seed.py) seeded into the session's
one ``evalkit server`` (``tracking_server`` in tests/conftest.py) on 127.0.0.1, and ``ui_app``: the
UI alone over a store, with a given principal (as the auth middleware would set it) for the tests
of roles and CSRF fields (``server_fixture.serve_in_thread`` puts it on a real uvicorn for the browser)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from server_fixture import ServerProcess
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



@pytest.fixture(scope="session")
def seeded_store(tracking_server: ServerProcess) -> Iterator[tuple[Seeded, SqlStore]]:
    """The UI's data (tests/ui_seed.py), seeded once into the session's shared server's store (its
    own experiments, suites and models), and a SqlStore over that store for the tests to check
    against: the UI's unit tests serve it in-process, the browser tests through the server."""
    seeded = seed(tracking_server.backend_store_uri, tracking_server.artifact_root)
    store = SqlStore.from_uri(seeded.uri)
    yield seeded, store
    store.close()


@pytest.fixture(scope="session")
def ui_server(seeded_store: tuple[Seeded, SqlStore], tracking_server: ServerProcess) -> UiServer:
    """The session's shared ``evalkit server`` (create_app: REST API, auth off on loopback, the UI
    at /) with the UI's data in it."""
    seeded, store = seeded_store
    return UiServer(tracking_server.url, store, seeded)


@pytest.fixture(scope="module")
def http(seeded_store: tuple[Seeded, SqlStore]) -> Iterator[TestClient]:
    """The web UI over the seeded store, in process (no server): for what a page answers."""
    seeded, store = seeded_store
    with TestClient(ui_app(store, seeded.artifact_root)) as client:
        yield client
