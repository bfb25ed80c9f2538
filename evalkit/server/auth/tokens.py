"""The tracking server's access tokens, kept in the tracking database as SHA-256 hashes.

A token is ``ek_`` and 43 URL-safe characters (256 random bits): the prefix lets redaction
spot one in any text (evalkit/redaction.py). So much entropy needs no slow password hash: a
plain SHA-256 cannot be reversed, and it lets a request find its token by an index lookup.
The token itself is shown once, when it is created, and never stored, logged or returned again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from evalkit.errors import AlreadyExists, InvalidArgument, NotFound
from evalkit.server.auth.roles import Role, check_role
from evalkit.tracking.clock import now_ms
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import create_store_engine, write_transaction
from evalkit.tracking.uri import parse_tracking_uri

TOKEN_PREFIX = "ek_"
MAX_NAME_LENGTH = 100
# last_used is written at most this often per token, so reads do not turn into writes.
LAST_USED_RESOLUTION_MS = 60_000
FIRST_ADMIN_NAME = "admin"
# Every request runs one of these: built once, not per call.
_BY_HASH = select(t.auth_tokens).where(t.auth_tokens.c.token_hash == bindparam("digest"))
_ACTIVE_BY_ID = select(t.auth_tokens).where(t.auth_tokens.c.token_id == bindparam("token_id"),
                                            t.auth_tokens.c.revoked_at.is_(None))


@dataclass(frozen=True)
class TokenRecord:
    """A token as stored: everything but the token itself. Times are ms since the epoch."""

    token_id: int
    name: str
    role: Role
    created: int
    last_used: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created": self.created, "last_used": self.last_used,
                "revoked_at": self.revoked_at}


def new_token() -> str:
    """A fresh token: ``ek_`` and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) stored in place of ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_engine(engine_or_store_uri: Engine | str | Any, create: bool = True) -> Engine:
    """The SQLAlchemy engine of a tracking store given as an engine, a SQL tracking URI, or an
    open SQL store (anything with an ``engine``, or wrapping one as ``inner``)."""
    if isinstance(engine_or_store_uri, Engine):
        return engine_or_store_uri
    if isinstance(engine_or_store_uri, str):
        scheme = engine_or_store_uri.split("://", 1)[0].lower() if "://" in engine_or_store_uri else ""
        if scheme in ("http", "https"):
            raise InvalidArgument(
                f"tokens live in the server's own database, not behind {engine_or_store_uri!r}: "
                "give the --backend-store-uri the server was started with (a SQLite path or postgresql://...)"
            )
        return create_store_engine(parse_tracking_uri(engine_or_store_uri), create=create)
    store = engine_or_store_uri
    while not hasattr(store, "engine") and hasattr(store, "inner"):
        store = store.inner
    if isinstance(getattr(store, "engine", None), Engine):
        return store.engine
    raise InvalidArgument(f"authentication needs a SQL tracking store, got {type(engine_or_store_uri).__name__}")


def _record(row: Any) -> TokenRecord:
    return TokenRecord(row.token_id, row.name, row.role, row.created, row.last_used, row.revoked_at)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH or name != name.strip() \
            or not name.isprintable():
        raise InvalidArgument(
            f"token name {name!r} must be 1 to {MAX_NAME_LENGTH} printable characters without leading or "
            "trailing spaces"
        )
    return name


class TokenStore:
    """Create, revoke, list and check tokens in one tracking database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, engine_or_store_uri: Engine | str | Any, create: bool = True) -> TokenStore:
        """The token store of a tracking store (see :func:`open_engine`), migrating it if needed."""
        return cls(open_engine(engine_or_store_uri, create=create))

    def create(self, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new active token named ``name`` with ``role``: its record and the token itself,
        which is not kept anywhere (show it to the user once). ``AlreadyExists`` if an active
        token has that name."""
        _check_name(name)
        try:
            role = check_role(role)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        token = new_token()
        created = now_ms()

        def work(conn: Connection) -> int:
            return conn.execute(
                insert(t.auth_tokens).values(name=name, role=role, token_hash=hash_token(token), created=created)
            ).inserted_primary_key[0]

        try:
            token_id = write_transaction(self.engine, work)
        except IntegrityError:
            raise AlreadyExists(f"an active token named {name!r} already exists: revoke it first") from None
        return TokenRecord(token_id, name, role, created, None, None), token

    def revoke(self, name: str) -> TokenRecord:
        """Revoke the active token named ``name`` (at once, for every worker and session);
        ``NotFound`` if there is none."""
        revoked = now_ms()

        def work(conn: Connection) -> Any:
            return conn.execute(
                update(t.auth_tokens)
                .where(t.auth_tokens.c.name == name, t.auth_tokens.c.revoked_at.is_(None))
                .values(revoked_at=revoked)
                .returning(*t.auth_tokens.c)
            ).first()

        row = write_transaction(self.engine, work)
        if row is None:
            raise NotFound(f"no active token named {name!r}")
        return _record(row)

    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        """The tokens, oldest first; revoked ones only with ``include_revoked``."""
        query = select(t.auth_tokens).order_by(t.auth_tokens.c.token_id)
        if not include_revoked:
            query = query.where(t.auth_tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def count_active(self) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(t.auth_tokens).where(t.auth_tokens.c.revoked_at.is_(None))
            return conn.execute(query).scalar_one()

    def authenticate(self, token: str) -> TokenRecord | None:
        """The active token's record, or None for an unknown or revoked token."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(_BY_HASH, {"digest": digest}).first()
        # The index finds the row; compare the hashes in constant time all the same.
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
            return None
        self._touch(row)
        return _record(row)

    def get_active(self, token_id: int) -> TokenRecord | None:
        """The token with ``token_id`` if it is still active (a UI session lives as long as its token)."""
        with self.engine.connect() as conn:
            row = conn.execute(_ACTIVE_BY_ID, {"token_id": token_id}).first()
        if row is None:
            return None
        self._touch(row)
        return _record(row)

    def _touch(self, row: Any) -> None:
        now = now_ms()
        if row.last_used is not None and now - row.last_used < LAST_USED_RESOLUTION_MS:
            return
        write_transaction(self.engine, lambda conn: conn.execute(
            update(t.auth_tokens).where(t.auth_tokens.c.token_id == row.token_id).values(last_used=now)))

    def ensure_first_admin(self) -> str | None:
        """A new admin token named ``admin`` when no active token exists (returned once), else
        None. Servers starting together create one: the active-name index refuses the others."""
        if self.count_active():
            return None
        try:
            return self.create(FIRST_ADMIN_NAME, "admin")[1]
        except AlreadyExists:
            return None


def ensure_admin_token(store_uri: Engine | str | Any) -> str | None:
    """On a server's first start: create an admin token when the store holds no active token,
    and return it (print it once), else None."""
    store = TokenStore.open(store_uri)
    try:
        return store.ensure_first_admin()
    finally:
        if isinstance(store_uri, str):  # an engine opened here; a caller's engine stays open
            store.engine.dispose()
