"""The tracking server's authentication against a real uvicorn on 127.0.0.1: tokens and roles,
revocation, the UI's sign-in session with its CSRF token, no token in any log or response, the
first admin token, and ``evalkit server token ...``."""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from server_fixture import serve_in_thread

from evalkit.cli.main import main
from evalkit.errors import AlreadyExists, InvalidArgument, NotFound
from evalkit.server.auth import (
    TokenStore,
    ensure_admin_token,
    install_auth,
    required_role,
    requires_auth,
)
from evalkit.server.auth.sessions import CSRF_HEADER, SESSION_COOKIE, shared_secret

pytest_plugins = ["browser"]
REDIRECT = 303


def build_app(store: str | None, enabled: bool = True, static: Path | None = None) -> FastAPI:
    """A stand-in for the server: a read route, a write route, a token route, a page."""
    app = FastAPI()
    install_auth(app, engine_or_store_uri=store, enabled=enabled)
    if static is not None:
        app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/api/v1/x")
    def read(request: Request) -> dict:
        principal = request.state.principal
        return {"name": principal.name, "role": principal.role, "via": principal.via,
                "csrf_token": request.state.csrf_token}

    @app.post("/api/v1/x")
    async def write(request: Request) -> dict:
        return {"name": request.state.principal.name, "body": (await request.body()).decode()}

    @app.post("/api/v1/tokens")
    def manage_tokens(request: Request) -> dict:
        return {"name": request.state.principal.name}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/")
    def home(request: Request) -> HTMLResponse:
        return HTMLResponse(f'<link rel="icon" href="data:,"><p>hello {request.state.principal.name}</p>')

    return app


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Server:
    url: str
    port: int
    store: str
    static: Path
    tokens: TokenStore
    logs: LogCapture
    client: httpx.Client
    secrets: dict[str, str] = field(default_factory=dict)  # every token handed out, by name
    responses: list[httpx.Response] = field(default_factory=list)

    def new_token(self, role: str) -> str:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        self.secrets[name] = self.tokens.create(name, role)[1]
        return self.secrets[name]

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.request(method, self.url + path, headers=headers, **kwargs)
        self.client.cookies.clear()  # each test sends the session cookie it means to, by hand
        self.responses.append(response)
        return response


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("auth")
    store, static = str(folder / "server.db"), folder / "static"
    static.mkdir()
    tokens = TokenStore.open(store)
    logs = LogCapture()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "evalkit")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(logs)
    with serve_in_thread(build_app(store, static=static), access_log=True, lifespan="off") as url:
        client = httpx.Client(follow_redirects=False, timeout=10)  # one client: each new one costs ~0.3 s
        yield Server(url, int(url.rsplit(":", 1)[1]), store, static, tokens, logs, client)
        client.close()
    logging.getLogger().removeHandler(logs)
    for lg, level in saved:
        lg.setLevel(level)
    tokens.engine.dispose()


def error_of(response: httpx.Response) -> str:
    return response.json()["error_code"]


@pytest.mark.parametrize("method, path, needed", [
    ("GET", "/api/v1/runs", "reader"), ("HEAD", "/api/v1/runs", "reader"), ("OPTIONS", "/api/v1/runs", "reader"),
    ("POST", "/api/v1/runs", "editor"), ("DELETE", "/api/v1/runs/1", "editor"), ("PATCH", "/", "editor"),
    ("GET", "/api/v1/tokens", "admin"), ("DELETE", "/api/v1/tokens/ci", "admin"), ("GET", "/api/v1/admin/x", "admin"),
    ("GET", "/api/v1/tokensmith", "reader"), ("GET", "/health", None), ("GET", "/version", None),
    ("POST", "/login", None), ("GET", "/static/app.js", None), ("GET", "/statics", "reader"),
])
def test_the_role_rule(method, path, needed):
    assert required_role(method, path) == needed


def test_requests_without_a_valid_token_get_401(server):
    for headers in ({}, {"Authorization": "Bearer ek_" + "x" * 43}, {"Authorization": "Bearer"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not-even-a-token"}):
        response = server.request("GET", "/api/v1/x", headers=headers)
        assert response.status_code == 401, headers
        assert error_of(response) == "UNAUTHENTICATED" and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["message"]
    # the probes stay open, even to a client sending a stale token
    assert server.request("GET", "/health").json() == {"status": "ok"}
    assert server.request("GET", "/health", "ek_" + "y" * 43).status_code == 200


def test_readers_read_editors_write_and_only_admins_manage_tokens(server):
    reader, editor, admin = (server.new_token(role) for role in ("reader", "editor", "admin"))
    read = server.request("GET", "/api/v1/x", reader)
    assert read.status_code == 200 and read.json()["role"] == "reader" and read.json()["via"] == "bearer"
    refused = server.request("POST", "/api/v1/x", reader, content=b"{}")
    assert refused.status_code == 403 and error_of(refused) == "PERMISSION_DENIED"
    assert "has role reader; POST /api/v1/x needs editor" in refused.json()["message"]
    written = server.request("POST", "/api/v1/x", editor, content=b"payload")
    assert written.status_code == 200 and written.json()["body"] == "payload"
    assert written.json()["name"].startswith("editor-")
    for token in (reader, editor):
        assert server.request("POST", "/api/v1/tokens", token).status_code == 403
    assert server.request("POST", "/api/v1/tokens", admin).json()["name"].startswith("admin-")
    assert server.request("POST", "/api/v1/x", admin, content=b"a").status_code == 200


def test_a_revoked_token_is_refused_at_once_and_its_name_can_be_issued_again(server):
    name = f"temp-{uuid.uuid4().hex[:6]}"
    record, token = server.tokens.create(name, "editor")
    server.secrets[name] = token
    assert server.request("GET", "/api/v1/x", token).status_code == 200
    with pytest.raises(AlreadyExists, match=name):
        server.tokens.create(name, "reader")
    # revoked through another connection to the database, as the CLI does
    other = TokenStore.open(server.store)
    assert other.revoke(name).revoked_at is not None
    other.engine.dispose()
    response = server.request("GET", "/api/v1/x", token)
    assert response.status_code == 401 and error_of(response) == "UNAUTHENTICATED"
    _, again = server.tokens.create(name, "reader")
    server.secrets[name + "#2"] = again
    assert server.request("GET", "/api/v1/x", again).json()["role"] == "reader"
    assert server.request("GET", "/api/v1/x", token).status_code == 401
    assert [r.role for r in server.tokens.list(include_revoked=True) if r.name == name] == ["editor", "reader"]
    assert server.tokens.authenticate(token) is None and server.tokens.authenticate("") is None


def session_cookie(response: httpx.Response) -> tuple[str, str]:
    """The session cookie's value and its Set-Cookie header."""
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    return header.split(";", 1)[0].split("=", 1)[1], header


def test_signing_in_with_a_token_gives_a_session_whose_writes_need_the_csrf_token(server):
    editor = server.new_token("editor")
    page = server.request("GET", "/login?next=/runs%3Fpage%3D2")
    assert page.status_code == 200 and "<script" not in page.text and "style=" not in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert 'name="next" value="/runs?page=2"' in page.text

    wrong = server.request("POST", "/login", data={"token": "ek_" + "z" * 43, "next": "/"})
    assert wrong.status_code == 200 and "Unknown or revoked token" in wrong.text and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    signed_in = server.request("POST", "/login", data={"token": editor, "next": "/runs?page=2"})
    assert signed_in.status_code == REDIRECT and signed_in.headers["location"] == "/runs?page=2"
    cookie, header = session_cookie(signed_in)
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes and "secure" not in attributes
    assert editor not in header

    jar = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    me = server.request("GET", "/api/v1/x", headers=jar).json()
    assert me["via"] == "session" and me["role"] == "editor" and len(me["csrf_token"]) == 64
    csrf = me["csrf_token"]
    assert "<p>hello editor-" in server.request("GET", "/", headers={**jar, "Accept": "text/html"}).text

    for extra in ({}, {CSRF_HEADER: "0" * 64}):
        refused = server.request("POST", "/api/v1/x", headers={**jar, **extra}, content=b"x")
        assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
    assert server.request("POST", "/api/v1/x", headers={**jar, CSRF_HEADER: csrf}, content=b"x").json()["body"] == "x"
    # a form carries it as a field, and the app still reads the whole body
    form = server.request("POST", "/api/v1/x", headers=jar, data={"name": "é&x", "csrf_token": csrf})
    assert form.status_code == 200 and "csrf_token=" + csrf in form.json()["body"]
    assert server.request("POST", "/api/v1/x", headers=jar, data={"csrf_token": "bad"}).status_code == 403
    # a bearer token needs no CSRF token: it is not sent by the browser on its own
    assert server.request("POST", "/api/v1/x", editor, content=b"y").status_code == 200

    out = server.request("POST", "/logout", headers=jar)
    assert out.status_code == REDIRECT and out.headers["location"] == "/login"
    assert session_cookie(out)[0] in ("", '""') and "max-age=0" in session_cookie(out)[1].lower()


def test_sessions_end_with_their_token_and_forged_or_cross_site_ones_are_refused(server):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    server.secrets[name] = token = server.tokens.create(name, "reader")[1]
    cookie, _ = session_cookie(server.request("POST", "/login", data={"token": token}))
    jar = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert server.request("GET", "/api/v1/x", headers=jar).status_code == 200
    # a reader's session cannot write, CSRF token or not
    csrf = server.request("GET", "/api/v1/x", headers=jar).json()["csrf_token"]
    assert server.request("POST", "/api/v1/x", headers={**jar, CSRF_HEADER: csrf}).status_code == 403

    forged = {"Cookie": f"{SESSION_COOKIE}={cookie[:-3]}abc"}
    assert server.request("GET", "/api/v1/x", headers=forged).status_code == 401
    server.tokens.revoke(name)
    gone = server.request("GET", "/api/v1/x", headers=jar)
    assert gone.status_code == 401 and "sign in again" in gone.json()["message"]
    # a browser asking for a page is sent to the sign-in page, which comes back to it
    page = server.request("GET", "/runs?x=1", headers={**jar, "Accept": "text/html"})
    assert page.status_code == REDIRECT and page.headers["location"] == "/login?next=%2Fruns%3Fx%3D1"
    assert session_cookie(page)[1].lower().count("max-age=0") == 1  # the dead cookie is dropped

    other_site = server.request("POST", "/login", data={"token": token}, headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403 and "set-cookie" not in other_site.headers
    # next may only point to this server
    fresh = server.new_token("reader")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert server.request("POST", "/login", data={"token": fresh, "next": target}).headers["location"] == "/"


def test_the_session_cookie_is_secure_behind_https(server):
    token = server.new_token("reader")
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, the address of a local reverse proxy
    response = server.request("POST", "/login", data={"token": token}, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in {part.strip().lower() for part in session_cookie(response)[1].split(";")}


def test_no_token_appears_in_any_log_line_or_response(server):
    token = server.new_token("admin")
    server.request("GET", "/api/v1/x", token)
    server.request("POST", "/login", data={"token": token})
    server.request("POST", "/login", data={"token": token + "x"})
    server.request("GET", "/api/v1/x", token + "x")
    logging.getLogger("evalkit.test").info("with %s", f"Authorization: Bearer {token}")  # a careless caller
    lines = server.logs.lines
    assert any('"GET /api/v1/x HTTP/1.1" 401' in line for line in lines)  # the access log was captured
    secrets = list(server.secrets.values())
    assert len(secrets) >= 10
    careless = [line for line in lines if line.startswith("evalkit.test")]
    assert careless and token in careless[0]  # the capture sees a token when one is logged...
    for line in lines:
        if line not in careless:  # ...and no line the server wrote holds one
            assert not any(secret in line or secret[:20] in line for secret in secrets), line
    for response in server.responses:
        seen = response.text + json.dumps(dict(response.headers))
        assert not any(secret in seen or secret[3:20] in seen for secret in secrets), response.url


def test_auth_off_makes_every_request_the_anonymous_admin():
    client = TestClient(build_app(None, enabled=False))
    assert client.get("/api/v1/x").json() == {"name": "anonymous", "role": "admin", "via": "open", "csrf_token": ""}
    assert client.post("/api/v1/tokens").status_code == 200
    assert client.get("/login?next=/runs", follow_redirects=False).headers["location"] == "/runs"
    assert client.get("/api/v1/x", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200


def test_a_server_open_because_it_listens_on_loopback_refuses_what_a_proxy_relays():
    assert not requires_auth("127.0.0.1") and not requires_auth("localhost") and not requires_auth("::1")
    assert requires_auth("0.0.0.0") and requires_auth("10.1.2.3") and requires_auth("evalkit.example.com")
    assert not requires_auth("0.0.0.0", insecure_no_auth=True)
    app = FastAPI()
    install_auth(app, enabled=False, loopback_only=True)
    app.get("/api/v1/x")(lambda: {"ok": True})
    client = TestClient(app)
    assert client.get("/api/v1/x").json() == {"ok": True}
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        refused = client.get("/api/v1/x", headers={header: "203.0.113.9"})
        assert refused.status_code == 401 and "came through a proxy" in refused.json()["message"], header


def test_ensure_admin_token_creates_exactly_one_admin_token(tmp_path):
    store = str(tmp_path / "fresh.db")
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_admin_token(store))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [r for r in results if r is not None]
    assert len(created) == 1 and created[0].startswith("ek_") and len(created[0]) == 46
    assert ensure_admin_token(store) is None
    tokens = TokenStore.open(store)
    assert [(r.name, r.role) for r in tokens.list()] == [("admin", "admin")]
    assert tokens.authenticate(created[0]).name == "admin"
    with pytest.raises(InvalidArgument, match="unknown role 'root'"):
        tokens.create("x", "root")
    for bad in (" padded", "", "new\nline", "x" * 101):
        with pytest.raises(InvalidArgument, match="token name"):
            tokens.create(bad, "reader")
    # with every token revoked, the next start makes a new admin token
    tokens.revoke("admin")
    assert ensure_admin_token(tokens.engine).startswith("ek_")
    tokens.engine.dispose()


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``evalkit ARGS...`` through ``main()``; returns (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["evalkit", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_the_token_commands(run_cli, tmp_path):
    store = str(tmp_path / "cli.db")
    code, out, err = run_cli("server", "token", "create", "--backend-store-uri", store, "--name", "ci", "--role", "editor")
    token = out.strip()
    assert code == 0 and token.startswith("ek_") and "\n" not in token and "shown only this once" in err
    tokens = TokenStore.open(store)
    assert tokens.authenticate(token).role == "editor"

    code, out, err = run_cli("server", "token", "list", "--backend-store-uri", store)
    assert code == 0 and "ci" in out and "editor" in out and token not in out
    code, out, _ = run_cli("server", "token", "create", "--backend-store-uri", store, "--name", "ci")
    assert code == 2 and out == ""
    code, out, _ = run_cli("server", "token", "revoke", "--backend-store-uri", store, "ci")
    assert code == 0 and "revoked editor token 'ci'" in out
    assert tokens.authenticate(token) is None
    code, _, err = run_cli("server", "token", "revoke", "--backend-store-uri", store, "ci")
    assert code == 2 and "no active token named 'ci'" in err
    code, out, _ = run_cli("server", "token", "list", "--backend-store-uri", store, "--all", "--json")
    listed = json.loads(out)
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "editor")] and listed[0]["revoked_at"]
    # the tracking URI is the default store; a missing one is not created by list or revoke
    code, _, err = run_cli("--tracking-uri", str(tmp_path / "missing.db"), "server", "token", "list")
    assert code == 2 and "no tracking store" in err and not (tmp_path / "missing.db").exists()
    code, _, err = run_cli("server", "token", "list", "--backend-store-uri", "http://server:5000")
    assert code == 2 and "tokens live in the server's own database" in err
    tokens.engine.dispose()


@pytest.mark.postgres
def test_tokens_on_postgresql(postgres):
    uri = postgres.create_database(f"auth_{uuid.uuid4().hex[:10]}")
    token = ensure_admin_token(uri)
    tokens = TokenStore.open(uri)
    assert tokens.authenticate(token).role == "admin" and ensure_admin_token(uri) is None
    tokens.create("ci", "reader")
    with pytest.raises(AlreadyExists):
        tokens.create("ci", "editor")
    tokens.revoke("ci")
    tokens.create("ci", "editor")
    with pytest.raises(NotFound):
        tokens.revoke("nobody")
    assert shared_secret(tokens.engine) == shared_secret(tokens.engine)
    assert [(r.name, r.role, r.active) for r in tokens.list(include_revoked=True)] == [
        ("admin", "admin", True), ("ci", "reader", False), ("ci", "editor", True)]
    tokens.engine.dispose()


@pytest.mark.browser
def test_signing_in_from_chromium_and_arriving_from_another_site(server, chromium_page):
    page, errors = chromium_page, []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    token = server.new_token("editor")
    page.goto(server.url + "/")
    assert page.url == server.url + "/login?next=%2F"
    page.fill("#token", "ek_" + "w" * 43)
    page.click("button[type=submit]")
    assert "Unknown or revoked token" in page.inner_text("p.error")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    assert page.inner_text("p").startswith("hello editor-")
    [cookie] = page.context.cookies()
    assert cookie["name"] == SESSION_COOKIE and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in cookie["value"]

    # A link on another site (localhost is another site than 127.0.0.1) brings no Strict cookie:
    # the sign-in page reloads itself as a same-site navigation, which does, and goes on.
    (server.static / "link.html").write_text(f'<link rel="icon" href="data:,"><a id="go" href="{server.url}/?from=chat">run</a>')
    page.goto(f"http://localhost:{server.port}/static/link.html")
    page.click("#go")
    page.wait_for_url(server.url + "/?from=chat")
    assert page.inner_text("p").startswith("hello editor-")
    assert errors == [], errors
