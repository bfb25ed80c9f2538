"""Authentication and roles for the tracking server.

- :func:`install_auth` puts the middleware and the sign-in pages on a FastAPI app;
- :func:`ensure_admin_token` makes the first admin token on a server's first start;
- :class:`TokenStore` creates, revokes and lists tokens (``evalkit server token ...``);
- the role rule is :func:`~evalkit.server.auth.roles.required_role`, in one place.

Managing tokens needs only the core install; serving needs the ``server`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.server.auth.binding import is_loopback, requires_auth
from evalkit.server.auth.roles import (
    ANONYMOUS,
    ROLES,
    Principal,
    Role,
    required_role,
    role_allows,
)
from evalkit.server.auth.tokens import (
    TokenRecord,
    TokenStore,
    ensure_admin_token,
    open_engine,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine

__all__ = [
    "ANONYMOUS", "ROLES", "Principal", "Role", "TokenRecord", "TokenStore", "ensure_admin_token", "install_auth",
    "is_loopback", "open_engine", "required_role", "requires_auth", "role_allows",
]


def install_auth(app: FastAPI, *, engine_or_store_uri: Engine | str | Any = None, enabled: bool,
                 loopback_only: bool = False, session_max_age_seconds: int | None = None) -> None:
    """Authenticate every request to ``app``, and serve ``GET/POST /login`` and ``POST /logout``.

    ``engine_or_store_uri`` is the tracking store holding the tokens: its engine, its SQL URI, or
    the open ``SqlStore`` (or a wrapper of one) the server serves. With ``enabled=False`` (a
    server on 127.0.0.1, or ``--insecure-no-auth``) every request is the anonymous admin; with
    ``loopback_only=True`` as well (open only because it listens on loopback, see
    :func:`requires_auth`), a request relayed by a reverse proxy (``Forwarded``,
    ``X-Forwarded-For``, ...) is refused, since it may come from anywhere.

    Each request gets ``request.state.principal`` (a :class:`Principal`) and
    ``request.state.csrf_token`` (for a page to embed as the ``csrf_token`` form field or the
    ``X-CSRF-Token`` header; empty unless signed in through the UI). Call it before the app
    serves its first request.
    """
    from evalkit.plugins import require_extra

    require_extra("itsdangerous", "server", "the tracking server's sign-in sessions")
    from evalkit.server.auth.middleware import AuthConfig, AuthMiddleware
    from evalkit.server.auth.pages import router
    from evalkit.server.auth.sessions import (
        SESSION_MAX_AGE_SECONDS,
        SessionCodec,
        shared_secret,
    )

    if enabled:
        if engine_or_store_uri is None:
            raise ValueError("install_auth(enabled=True) needs the tracking store that holds the tokens")
        tokens = TokenStore.open(engine_or_store_uri)
        codec = SessionCodec(shared_secret(tokens.engine), session_max_age_seconds or SESSION_MAX_AGE_SECONDS)
        config = AuthConfig(True, tokens, codec)
    else:
        config = AuthConfig(False, loopback_only=loopback_only)
    app.state.auth = config
    app.include_router(router)
    app.add_middleware(AuthMiddleware, config=config)
