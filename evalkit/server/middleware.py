"""ASGI middleware of the tracking server: request size limits and structured access logs.

Both are plain ASGI (not ``BaseHTTPMiddleware``) so that streamed artifact bodies pass through
without being buffered.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths of artifact uploads (evalkit's API, MLflow's artifact proxy), which get the larger limit.
ARTIFACT_UPLOAD_MARKS = ("/artifacts/files/", "/api/2.0/mlflow-artifacts/artifacts/")
access_log = logging.getLogger("evalkit.server.access")


class RequestTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over the server's limit of {limit} bytes")
        self.limit = limit


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` (``max_artifact_bytes`` for artifact uploads) with
    413, whether the size is announced in Content-Length or only discovered while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_artifact_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_artifact_bytes = max_artifact_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        uploading = any(mark in scope["path"] for mark in ARTIFACT_UPLOAD_MARKS)
        limit = self.max_artifact_bytes if uploading else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestTooLarge:
            if not response_started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error_code": "REQUEST_TOO_LARGE",
                       "message": f"request body over the server's limit of {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One JSON line per request on the ``evalkit.server.access`` logger: method, path (never the
    query string, which may hold a token), status, duration, bytes sent, the principal's name and
    a request id (echoed in the ``X-Request-Id`` response header). No header is ever logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = 500
        sent = 0

        async def logging_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            principal = scope.get("state", {}).get("principal")
            client = scope.get("client")
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "request_id": request_id, "method": scope["method"],
                "path": scope["path"], "status": status, "ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes": sent, "client": client[0] if client else None,
                "user": getattr(principal, "name", None),
            }))
