"""The ASGI middleware that authenticates every request and applies the role rule.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, so that streamed uploads and downloads
pass through untouched (only a cookie-authenticated form post is read, to find its CSRF token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalkit.errors import EvalkitError, PermissionDenied, Unauthenticated
from evalkit.server.auth.roles import (
    ANONYMOUS,
    SAFE_METHODS,
    Principal,
    required_role,
    role_allows,
)
from evalkit.server.auth.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    SessionCodec,
)
from evalkit.server.auth.tokens import TokenStore

# A form post larger than this must send its CSRF token as the X-CSRF-Token header.
MAX_FORM_BYTES = 1 << 20
LOGIN_PATH = "/login"


@dataclass(frozen=True)
class AuthConfig:
    """What the middleware and the sign-in pages share (``app.state.auth``)."""

    enabled: bool
    tokens: TokenStore | None = None
    sessions: SessionCodec | None = None
    # Open only because the server listens on loopback: a request relayed by a reverse proxy
    # on the same machine comes from anywhere, so it is refused (start the server with tokens).
    loopback_only: bool = False


class AuthMiddleware:
    """Sets ``request.state.principal`` and ``request.state.csrf_token`` on every request, and
    answers 401 (no, unknown or revoked token) or 403 (role too low, CSRF token missing) itself."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["csrf_token"] = ""
        if not self.config.enabled:
            if self.config.loopback_only and scope["type"] == "http" and _proxied(scope):
                await _error(Unauthenticated(
                    "this server runs without authentication because it listens on 127.0.0.1, and this "
                    "request came through a proxy: start the server with authentication on"), scope, receive, send)
                return
            state["principal"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # the server has none: refuse rather than leave one open
            await send({"type": "websocket.close", "code": 1008})
            return

        conn = HTTPConnection(scope)
        method = scope["method"].upper()
        path = _route_path(scope)
        needed = required_role(method, path)
        if needed is None and path != LOGIN_PATH:  # probes and static files: nobody to identify
            await self.app(scope, receive, send)
            return
        try:
            principal, session = await self._identify(conn)
        except Unauthenticated as exc:
            if needed is None:  # a stale credential does not block the sign-in page
                await self.app(scope, receive, send)
                return
            await self._refuse(conn, path, exc, scope, receive, send)
            return
        if principal is not None:
            state["principal"] = principal
        if session is not None:
            state["csrf_token"] = self.config.sessions.csrf_token(session)
        if needed is None:
            await self.app(scope, receive, send)
            return
        if principal is None:
            await self._refuse(conn, path, Unauthenticated(
                "authentication required: send 'Authorization: Bearer <token>' (the client reads "
                "$EVALKIT_TRACKING_TOKEN) or sign in at /login"), scope, receive, send)
            return
        if not role_allows(principal.role, needed):
            await _error(PermissionDenied(
                f"token {principal.name!r} has role {principal.role}; {method} {path} needs {needed}"),
                scope, receive, send)
            return
        if session is not None and method not in SAFE_METHODS:
            candidate = conn.headers.get(CSRF_HEADER)
            if candidate is None:
                candidate, receive = await _form_field(scope, receive, CSRF_FIELD)
            if not self.config.sessions.csrf_matches(session, candidate):
                await _error(PermissionDenied(
                    f"missing or wrong CSRF token: send the page's csrf_token as the {CSRF_HEADER} header "
                    f"or a {CSRF_FIELD!r} form field"), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _identify(self, conn: HTTPConnection) -> tuple[Principal | None, Session | None]:
        """Who sent the request: a bearer token wins over the session cookie. Unauthenticated for
        a credential that is sent but not valid."""
        tokens, sessions = self.config.tokens, self.config.sessions
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, credential = header.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated("malformed Authorization header: use 'Authorization: Bearer <token>'")
            record = await run_in_threadpool(tokens.authenticate, credential.strip())
            if record is None:
                raise Unauthenticated("unknown or revoked token")
            return Principal(record.name, record.role, via="bearer"), None
        cookie = conn.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return None, None
        session = sessions.read(cookie)
        record = None if session is None else await run_in_threadpool(tokens.get_active, session.token_id)
        if record is None:
            raise Unauthenticated("the session has expired or its token was revoked: sign in again at /login")
        return Principal(record.name, record.role, via="session"), session

    async def _refuse(self, conn: HTTPConnection, path: str, exc: Unauthenticated,
                      scope: Scope, receive: Receive, send: Send) -> None:
        """401, except that a browser asking for a page is sent to the sign-in page."""
        if scope["method"] in ("GET", "HEAD") and not path.startswith("/api/") \
                and "text/html" in conn.headers.get("accept", ""):
            target = path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
            await _send(send, 303, b"", [(b"location", f"{LOGIN_PATH}?next={quote(target, safe='')}".encode()),
                                         *_forget_cookie(conn)])
            return
        await _error(exc, scope, receive, send, [(b"www-authenticate", b"Bearer"), *_forget_cookie(conn)])


def _route_path(scope: Scope) -> str:
    """The path the app's router matches (without the root path of a reverse proxy's prefix)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def _proxied(scope: Scope) -> bool:
    names = {name for name, _ in scope["headers"]}
    return bool(names & {b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-real-ip"})


def _forget_cookie(conn: HTTPConnection) -> list[tuple[bytes, bytes]]:
    if SESSION_COOKIE not in conn.cookies:
        return []
    return [(b"set-cookie", f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict".encode())]


async def _error(exc: EvalkitError, scope: Scope, receive: Receive, send: Send,
                 headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error_code": exc.code, "message": str(exc)}).encode()
    await _send(send, exc.http_status, body, [(b"content-type", b"application/json"), *headers])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _form_field(scope: Scope, receive: Receive, name: str) -> tuple[str | None, Receive]:
    """The value of field ``name`` in a URL-encoded form body, and a ``receive`` that hands the
    body to the app again. Other bodies are left unread (None)."""
    content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        return None, receive
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return None, receive
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > MAX_FORM_BYTES:
            return None, receive
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    values = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    return values.get(name), replay
