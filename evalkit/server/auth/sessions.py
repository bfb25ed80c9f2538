"""The web UI's sign-in sessions: a signed cookie naming the token it was opened with, and the
CSRF token bound to it.

The cookie holds the token's id and a random session id, signed with a key kept in the tracking
database (every worker reads the same one); it never holds the token. A session ends when the
browser drops the cookie (sign-out), after ``SESSION_MAX_AGE_SECONDS``, or when its token is
revoked. The CSRF token is an HMAC of the session id: a page embeds it, and a cookie-carried
write must send it back, which another site cannot do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from evalkit.tracking.clock import now_ms
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import write_transaction

SESSION_COOKIE = "evalkit_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_SECONDS = 12 * 3600
_SIGNING_KEY = "session_signing_key"


def shared_secret(engine: Engine, name: str = _SIGNING_KEY) -> str:
    """The secret ``name`` from the store's ``server_secrets``, created on first use; every
    worker and restart of the server gets the same value."""
    query = select(t.server_secrets.c.value).where(t.server_secrets.c.name == name)

    def work(conn: Connection) -> str:
        value = conn.execute(query).scalar_one_or_none()
        if value is None:
            value = secrets.token_urlsafe(48)
            conn.execute(insert(t.server_secrets).values(name=name, value=value, created=now_ms()))
        return value

    try:
        return write_transaction(engine, work)
    except IntegrityError:  # another worker created it first (PostgreSQL): read theirs
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()


@dataclass(frozen=True)
class Session:
    token_id: int
    session_id: str


class SessionCodec:
    """Signs and reads session cookies and derives their CSRF tokens with one secret."""

    def __init__(self, secret: str, max_age_seconds: int = SESSION_MAX_AGE_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="evalkit.session")
        self._csrf_key = hashlib.sha256(b"evalkit.csrf:" + secret.encode()).digest()
        self.max_age_seconds = max_age_seconds

    def issue(self, token_id: int) -> tuple[str, Session]:
        """A new session for the token ``token_id``: the cookie value and the session."""
        session = Session(token_id, secrets.token_urlsafe(16))
        return self._serializer.dumps([session.token_id, session.session_id]), session

    def read(self, cookie: str) -> Session | None:
        """The session a cookie carries, or None if it is forged, malformed or expired."""
        try:
            token_id, session_id = self._serializer.loads(cookie, max_age=self.max_age_seconds)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(token_id, int) or not isinstance(session_id, str):
            return None
        return Session(token_id, session_id)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of ``session`` (the same for the whole session)."""
        return hmac.new(self._csrf_key, session.session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, session: Session, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(self.csrf_token(session), candidate)
