"""What every page handler needs from the app and the request: the store, a client over it,
the user's role, the CSRF token, artifact repositories and the templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse

from evalkit.entities import Run
from evalkit.errors import EvalkitError
from evalkit.tracking.artifacts import ArtifactRepository, get_artifact_repository
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.store import TrackingStore

TEMPLATES = Path(__file__).parent / "templates"
EDIT_ROLES = ("editor", "admin")


class PermissionDenied(EvalkitError):
    """The signed-in user's role does not allow this change."""

    code = "PERMISSION_DENIED"
    http_status = 403


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their name, role and the CSRF token their forms must send back."""

    name: str
    role: str
    csrf_token: str | None

    @property
    def can_edit(self) -> bool:
        return self.role in EDIT_ROLES


def viewer(request: Request) -> Viewer:
    """The request's principal (set by the auth middleware), or an anonymous admin without auth."""
    principal = getattr(request.state, "principal", None)
    token = getattr(request.state, "csrf_token", None)
    if principal is None:
        return Viewer("anonymous", "admin", token)
    return Viewer(principal.name, principal.role, token)


def require_editor(request: Request) -> None:
    """``PermissionDenied`` unless the user may change experiments."""
    if not viewer(request).can_edit:
        raise PermissionDenied(f"{viewer(request).name} has the role {viewer(request).role}: changes need editor or admin")


def acting_user(request: Request) -> str | None:
    """The name the registry records as who made a change: the signed-in user, or None without
    auth (the store then records the operating-system user, as a local client would)."""
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", None)
    return name if name and name != "anonymous" else None


def quoted(value: str) -> str:
    """``value`` as a single-quoted string of the filter grammars (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def store(request: Request) -> TrackingStore:
    return request.app.state.store


def client(request: Request) -> TrackingClient:
    """A TrackingClient over the served store, for the report functions that take one."""
    return TrackingClient.for_store(store(request))


def artifacts(request: Request, run: Run) -> ArtifactRepository:
    """The run's artifact repository: the server's own resolver when it has one (it may proxy or sign)."""
    resolve = getattr(request.app.state, "artifact_repository_for", None)
    return resolve(run) if resolve is not None else get_artifact_repository(run.info.artifact_uri)


def when(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: int | None, end: int | None) -> str:
    """A run's duration as 1.2s, 3m 4s or 2h 5m; empty while unknown."""
    if start is None or end is None:
        return ""
    seconds = max(0, end - start) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def number(value: Any) -> str:
    """A metric value with 4 significant digits (integers in full)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, number=number)
    env.globals.update(duration=duration)
    return env


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """The template rendered (autoescaped) with the viewer and the request's URL."""
    html = environment().get_template(template).render(viewer=viewer(request), request=request, **values)
    return HTMLResponse(html, status_code=status_code)


def is_fragment(request: Request) -> bool:
    """An htmx request, answered with the part of the page it swaps in."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
