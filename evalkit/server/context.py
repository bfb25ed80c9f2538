"""What a route needs from the app and the request: the store, the acting user, the wire form of a run."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from fastapi import Request

from evalkit.entities import Run, RunInfo
from evalkit.errors import InvalidArgument
from evalkit.server.config import ServerConfig
from evalkit.tracking.request_scope import request_scope
from evalkit.tracking.rest.api import (
    IDEMPOTENCY_HEADER,
    USER_HEADER,
    served_artifact_uri,
)
from evalkit.tracking.store import TrackingStore

MAX_USER_LENGTH = 250


def store_of(request: Request) -> TrackingStore:
    return request.app.state.store


def config_of(request: Request) -> ServerConfig:
    return request.app.state.config


def acting_user(request: Request) -> str | None:
    """The authenticated principal's name; with auth off, the user the client says it is."""
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", None)
    if name and name != "anonymous":
        return name
    claimed = request.headers.get(USER_HEADER, "").strip()
    return claimed[:MAX_USER_LENGTH] if claimed.isprintable() and claimed else name


def scoped(request: Request) -> AbstractContextManager[None]:
    """Serve the request as its user, recording its idempotency key with the writes it makes."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not (0 < len(key) <= 64 and key.isascii() and key.isprintable()):
        raise InvalidArgument("the Idempotency-Key header must be 1 to 64 printable ASCII characters")
    return request_scope(acting_user(request), key)


def info_out(request: Request, info: RunInfo) -> dict[str, Any]:
    """A run's info as the client sees it: artifacts reached through the server when it serves them."""
    data = info.to_dict()
    if config_of(request).artifacts_through_server:
        data["artifact_uri"] = served_artifact_uri(info.run_id)
    return data


def run_out(request: Request, run: Run) -> dict[str, Any]:
    return {"info": info_out(request, run.info), "data": run.data.to_dict()}
