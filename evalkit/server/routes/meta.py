"""``/health`` and ``/version``: open to everyone (no token), for load balancers and clients."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from evalkit import __version__
from evalkit.server.context import config_of, store_of
from evalkit.tracking.rest.api import API_VERSION

router = APIRouter(tags=["server"])


@router.get("/health", summary="200 when the store answers, 503 (STORE_UNAVAILABLE) when it does not")
def health(request: Request) -> Response:
    store_of(request).search_experiments(max_results=1)  # a store error answers 503 through the handlers
    return JSONResponse({"status": "ok"})


@router.get("/version", summary="evalkit's version, the API version and how artifacts are served")
def version(request: Request) -> Response:
    config = config_of(request)
    mode = "proxied" if config.serve_artifacts else "presigned" if config.presigned_artifacts else "direct"
    return JSONResponse({"evalkit": __version__, "api_version": API_VERSION, "artifacts": mode,
                         "auth": config.auth_enabled})
