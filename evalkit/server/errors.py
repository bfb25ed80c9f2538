"""Every error the server answers with is JSON: ``{"error_code": ..., "message": ...}``.

The codes are evalkit's (``evalkit.errors``), so the REST store raises the same exception class
the store raised on the server. Unexpected failures answer ``INTERNAL_ERROR`` without details
(the traceback goes to the server's log, redacted). Another API served by the same app (MLflow's)
answers the same errors in its own words: :func:`add_error_dialect`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from evalkit.errors import EvalkitError
from evalkit.server.middleware import RequestTooLarge

log = logging.getLogger("evalkit.server")

_HTTP_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "INVALID_STATE",
               413: "REQUEST_TOO_LARGE", 415: "INVALID_ARGUMENT"}


# How an API translates an error: (status, evalkit code, message, no_route) -> its answer.
ErrorDialect = Callable[..., JSONResponse]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def add_error_dialect(app: FastAPI, matches: Callable[[str], bool], respond: ErrorDialect) -> None:
    """Answer errors on the paths ``matches`` accepts with ``respond(status, code, message, no_route=...)``
    (``no_route``: the path or method is not served) instead of evalkit's own shape."""
    if not hasattr(app.state, "error_dialects"):
        app.state.error_dialects = []
    app.state.error_dialects.append((matches, respond))


def _answer(request: Request, status: int, code: str, message: str, no_route: bool = False) -> JSONResponse:
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    for matches, respond in getattr(request.app.state, "error_dialects", ()):
        if matches(path):
            return respond(status, code, message, no_route=no_route)
    return error_response(status, code, message)


def install_error_handlers(app: FastAPI) -> None:
    """Answer evalkit errors, bad requests, unknown routes and crashes as JSON errors."""

    @app.exception_handler(EvalkitError)
    async def _evalkit_error(request: Request, exc: EvalkitError) -> JSONResponse:
        return _answer(request, exc.http_status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(request, 400, "INVALID_ARGUMENT", describe_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RequestTooLarge):  # FastAPI wraps errors met while reading a JSON body
            return _answer(request, 413, "REQUEST_TOO_LARGE", str(exc.__cause__))
        return _answer(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR"), str(exc.detail),
                       no_route=exc.status_code in (404, 405))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
        return _answer(request, 500, "INTERNAL_ERROR", f"internal server error ({type(exc).__name__}); see the server log")


def describe_validation_errors(errors: list[dict]) -> str:
    """FastAPI's validation errors as one sentence per problem, naming where each is."""
    parts = []
    for error in errors[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request body"
        if error.get("type") == "json_invalid":
            parts.append(f"malformed JSON in the request body: {error.get('ctx', {}).get('error', error.get('msg'))}")
        else:
            parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)
