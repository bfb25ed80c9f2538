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
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'none'; object-src 'none'; "
                               "base-uri 'none'; "
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
    """A form posted from another site (its Origin names another host than this server's, or
    the public one a reverse proxy forwards): refused, so that no site can sign a visitor in or
    out of this server."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return urlsplit(origin).netloc not in hosts


def _signed_in(request: Request) -> bool:
    principal = getattr(request.state, "principal", None)
    return principal is not None and principal.via == "session"


def _page(request: Request, status: int = 200, error: str | None = None, next_path: str = "/",
          refresh_to: str | None = None) -> HTMLResponse:
    html = _templates.get_template("login.html").render(
        action=str(request.url_for("login_submit").path), next=next_path, error=error, refresh_to=refresh_to,
        signed_in_as=request.state.principal.name if _signed_in(request) else None)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@router.get(LOGIN_PATH, name="login_page")
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
    next_path = safe_next(next)
    if not _config(request).enabled or _signed_in(request):
        return RedirectResponse(next_path, status_code=303)
    if request.headers.get("sec-fetch-site") == "cross-site":
        # A link from another site (a chat, a CI page) brings no SameSite=Strict cookie, even for
        # a signed-in browser. Reloading this page from itself is a same-site navigation that
        # does: the browser then comes back here signed in and goes on to its page.
        return _page(request, next_path=next_path, refresh_to=str(request.url.path) + "?" + request.url.query)
    return _page(request, next_path=next_path)


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
    if record is None:  # the form again, as a 200: a 4xx page is a console error in the browser
        return _page(request, 200, "Unknown or revoked token.", next_path)
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
