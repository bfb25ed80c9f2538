"""Every error the server answers with is JSON: ``{"error_code": ..., "message": ...}``.

The codes are evalkit's (``evalkit.errors``), so the REST store raises the same exception class
the store raised on the server. Unexpected failures answer ``INTERNAL_ERROR`` without details
(the traceback goes to the server's log, redacted).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from evalkit.errors import EvalkitError
from evalkit.server.middleware import RequestTooLarge

log = logging.getLogger("evalkit.server")

_HTTP_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "INVALID_STATE",
               413: "REQUEST_TOO_LARGE", 415: "INVALID_ARGUMENT"}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer evalkit errors, bad requests, unknown routes and crashes as JSON errors."""

    @app.exception_handler(EvalkitError)
    async def _evalkit_error(_request: Request, exc: EvalkitError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "INVALID_ARGUMENT", describe_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RequestTooLarge):  # FastAPI wraps errors met while reading a JSON body
            return error_response(413, "REQUEST_TOO_LARGE", str(exc.__cause__))
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", f"internal server error ({type(exc).__name__}); see the server log")


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
