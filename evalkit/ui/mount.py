"""``mount_ui``: the UI's pages, static files and security headers on a FastAPI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalkit.ui.routes import compare, experiments, models, run, runs, suites

STATIC = Path(__file__).parent / "static"
# No inline script or style anywhere: the UI's own and the vendored files are served from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "frame-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'; "
    "object-src 'none'"
)


class SecurityHeaders:
    """The strict CSP on every HTML page (responses that set their own, like sandboxed artifacts,
    keep theirs), and no MIME sniffing or referrer anywhere.

    Pure ASGI, so streamed request bodies (artifact uploads) and their size limit's error pass
    through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_ui(app: FastAPI) -> None:
    """Add the UI to ``app``: pages at ``/`` (experiments), ``/runs``, ``/runs/{id}``, ``/compare``,
    ``/suites`` and ``/models``, static files at ``/static``. Reads ``app.state.store`` on every request."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (experiments, runs, run, compare, suites, models):
        app.include_router(module.router, include_in_schema=False)
    app.add_middleware(SecurityHeaders)
