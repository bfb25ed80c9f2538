"""``GET/POST /login`` and ``POST /logout``: signing the web UI in with a token.

The page has no script and no inline style, so it holds under a strict Content-Security-Policy;
everything it shows is escaped.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from evalkit.server.auth.middleware import LOGIN_PATH, AuthConfig
from evalkit.server.auth.sessions import SESSION_COOKIE

LOGOUT_PATH = "/logout"
MAX_LOGIN_BODY_BYTES = 16 * 1024
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True))
router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _config(request: Request) -> AuthConfig:
    return request.app.state.auth


def _cross_site(request: Request) -> bool:
    """A form posted from another site (its Origin names another host): refused, so that no site
    can sign a visitor in or out of this server."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host")


def _page(request: Request, status: int = 200, error: str | None = None, next_path: str = "/") -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    html = _templates.get_template("login.html").render(
        action=str(request.url_for("login_submit").path), next=next_path, error=error,
        signed_in_as=principal.name if principal is not None and principal.via == "session" else None)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@router.get(LOGIN_PATH, name="login_page")
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
    if not _config(request).enabled:
        return RedirectResponse(safe_next(next), status_code=303)
    return _page(request, next_path=safe_next(next))


@router.post(LOGIN_PATH, name="login_submit")
async def login_submit(request: Request) -> Response:
    config = _config(request)
    if _cross_site(request):
        return _page(request, 403, "This sign-in form was posted from another site.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY_BYTES:
            return _page(request, 413, "The sign-in form is too large.")
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    next_path = safe_next(form.get("next"))
    if not config.enabled:
        return RedirectResponse(next_path, status_code=303)
    token = form.get("token", "").strip()
    record = await run_in_threadpool(config.tokens.authenticate, token) if token else None
    if record is None:
        return _page(request, 401, "Unknown or revoked token.", next_path)
    cookie, _ = config.sessions.issue(record.token_id)
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, cookie, max_age=config.sessions.max_age_seconds, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post(LOGOUT_PATH, name="logout")
async def logout(request: Request) -> Response:
    if _cross_site(request):
        return _page(request, 403, "This sign-out form was posted from another site.")
    response = RedirectResponse(LOGIN_PATH if _config(request).enabled else "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
