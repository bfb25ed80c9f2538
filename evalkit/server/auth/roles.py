"""Who may do what on the tracking server: the one place where a request's path and method
decide the role it needs.

Roles are ordered: a reader reads, an editor also writes, an admin also manages tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["reader", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_RANK = {role: rank for rank, role in enumerate(ROLES)}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without a token: the probes, the sign-in page and the UI's static files.
OPEN_PATHS = frozenset({"/health", "/version", "/login", "/logout"})
OPEN_PREFIXES = ("/static/",)
ADMIN_PREFIXES = ("/api/v1/tokens", "/api/v1/admin")
# Reads made with POST (their bodies are queries): these need only reader.
READ_ONLY_POSTS = frozenset({
    "/api/v1/runs/search", "/api/v1/runs/count", "/api/v1/experiments/stats", "/api/v1/keys/search",
    "/api/v1/metrics/histories",
    "/api/2.0/mlflow/experiments/search",
    "/api/2.0/mlflow/runs/search",
    "/api/2.0/mlflow/registered-models/get-latest-versions",
    "/api/2.0/mlflow/logged-models/search",
})


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role (``request.state.principal``).

    ``via`` says how it was authenticated: ``"bearer"`` (an ``Authorization`` header),
    ``"session"`` (the UI's signed cookie) or ``"open"`` (authentication is off)."""

    name: str
    role: Role
    via: Literal["bearer", "session", "open"] = "bearer"

    def allows(self, needed: Role) -> bool:
        """Whether this principal's role is ``needed`` or higher (the UI hides what it cannot do)."""
        return role_allows(self.role, needed)


ANONYMOUS = Principal("anonymous", "admin", via="open")


def check_role(role: str) -> Role:
    """``role`` if it is one of reader, editor, admin, else ValueError naming the choices."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def role_allows(role: Role, needed: Role) -> bool:
    """Whether ``role`` is ``needed`` or higher."""
    return _RANK[role] >= _RANK[needed]


def is_open_path(path: str) -> bool:
    """Whether ``path`` is served without authentication."""
    return path in OPEN_PATHS or path == "/static" or path.startswith(OPEN_PREFIXES)


def required_role(method: str, path: str) -> Role | None:
    """The least role a request needs, or None for an open path.

    Token and admin routes need admin; safe methods (GET, HEAD, OPTIONS) and the searches made
    with POST (``READ_ONLY_POSTS``, evalkit's and MLflow's) need reader; every other request writes
    and needs editor."""
    if is_open_path(path):
        return None
    if any(path == prefix or path.startswith(prefix + "/") for prefix in ADMIN_PREFIXES):
        return "admin"
    return "reader" if method.upper() in SAFE_METHODS or path in READ_ONLY_POSTS else "editor"
