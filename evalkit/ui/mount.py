"""``mount_ui``: the UI's pages, static files and security headers on a FastAPI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from evalkit.ui.routes import compare, experiments, run, runs, suites

STATIC = Path(__file__).parent / "static"
# No inline script or style anywhere: the UI's own and the vendored files are served from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "frame-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'; "
    "object-src 'none'"
)


class SecurityHeaders(BaseHTTPMiddleware):
    """The strict CSP on every HTML page (responses that set their own, like sandboxed artifacts,
    keep theirs), and no MIME sniffing or referrer anywhere."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def mount_ui(app: FastAPI) -> None:
    """Add the UI to ``app``: pages at ``/`` (experiments), ``/runs``, ``/runs/{id}``, ``/compare`` and
    ``/suites``, static files at ``/static``. Reads ``app.state.store`` on every request."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (experiments, runs, run, compare, suites):
        app.include_router(module.router, include_in_schema=False)
    app.add_middleware(SecurityHeaders)
