"""Where the tracking store lives: resolving, normalising and redacting tracking URIs.

Accepted forms:
- ``sqlite:///relative/or/absolute.db`` or a plain file path (``evalkit.db``, ``/data/store.sqlite``);
- ``postgresql://user:password@host:port/database`` (``postgres://`` and ``postgresql+psycopg://`` too).
Without one, the store is ``evalkit.db`` in the working directory, or ``$EVALKIT_TRACKING_URI``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import InvalidArgument
from evalkit.tracking.artifacts import artifact_scheme, join_artifact_uri

DEFAULT_DB_FILE = "evalkit.db"
ARTIFACTS_FOLDER = "evalkit-artifacts"
TRACKING_URI_ENV = "EVALKIT_TRACKING_URI"
ARTIFACT_ROOT_ENV = "EVALKIT_ARTIFACT_ROOT"


@dataclass(frozen=True)
class StoreLocation:
    """A normalised tracking URI: the SQLAlchemy URL to connect to and where artifacts go."""

    uri: str
    sqlalchemy_url: str
    dialect: str  # "sqlite" or "postgresql"
    default_artifact_root: str

    @property
    def display_uri(self) -> str:
        return redact(self.uri)


def default_tracking_uri() -> str:
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{Path.cwd() / DEFAULT_DB_FILE}"


def artifact_root_from_env() -> str | None:
    """``$EVALKIT_ARTIFACT_ROOT`` normalised: a local path made absolute, a URI without trailing slash.

    It overrides the default artifact root of every store (``s3://bucket/prefix`` puts new
    experiments' artifacts on S3); an experiment's own ``artifact_location`` still wins."""
    root = (os.environ.get(ARTIFACT_ROOT_ENV) or "").strip()
    if not root:
        return None
    if artifact_scheme(root) == "file" and "://" not in root:
        return str(Path(root).expanduser().resolve())
    return join_artifact_uri(root)


def redact(uri: str) -> str:
    """The URI with any password replaced by ``***``, safe for messages and logs."""
    from sqlalchemy.engine import (
        make_url,  # SQLAlchemy loads when a SQL URI is first read, not at import
    )
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        return uri
    if url.password is None:
        return uri
    return url.render_as_string(hide_password=True)


def parse_tracking_uri(uri: str) -> StoreLocation:
    """Normalise ``uri`` or raise an error that says which forms are accepted."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidArgument(f"tracking URI must be a non-empty string, got {uri!r}")
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    artifact_root_override = artifact_root_from_env()

    if scheme == "":
        # A bare path names a SQLite file.
        path = Path(uri).expanduser().resolve()
        return _sqlite_location(path, artifact_root_override)
    if scheme == "sqlite":
        rest = uri[len("sqlite://"):]
        if not rest.startswith("/"):
            raise InvalidArgument(f"malformed SQLite tracking URI {uri!r}: use sqlite:///path/to/file.db")
        if rest[1:] in ("", ":memory:"):
            raise InvalidArgument(
                f"tracking URI {uri!r} names no file: an in-memory store would vanish with the process"
            )
        # sqlite:///rel.db is relative to the working directory, sqlite:////abs.db absolute.
        return _sqlite_location(Path(rest[1:]).expanduser().resolve(), artifact_root_override)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url("postgresql+psycopg://" + uri.split("://", 1)[1])
        except ArgumentError as exc:
            raise InvalidArgument(f"malformed PostgreSQL tracking URI {redact(uri)!r}: {exc}") from None
        if not url.database:
            raise InvalidArgument(
                f"PostgreSQL tracking URI {redact(uri)!r} names no database: use postgresql://user@host:5432/dbname"
            )
        root = artifact_root_override or str(Path.cwd() / ARTIFACTS_FOLDER)
        return StoreLocation(uri, url.render_as_string(hide_password=False), "postgresql", root)
    raise InvalidArgument(
        f"unsupported tracking URI scheme {scheme!r} in {redact(uri)!r}: use a file path, "
        "sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


def _sqlite_location(path: Path, artifact_root_override: str | None) -> StoreLocation:
    if path.is_dir():
        raise InvalidArgument(f"tracking URI names a directory, not a SQLite file: {path}")
    root = artifact_root_override or str(path.parent / ARTIFACTS_FOLDER)
    return StoreLocation(f"sqlite:///{path}", f"sqlite:///{path}", "sqlite", root)
