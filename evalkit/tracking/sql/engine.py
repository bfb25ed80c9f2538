"""Engines that behave the same on SQLite and PostgreSQL, and the schema migrations.

SQLite is made safe for several writer processes: WAL (readers never block), a long busy timeout,
and ``BEGIN IMMEDIATE`` for write transactions so a reader never has to upgrade its lock mid-way,
the case where SQLite gives up at once with "database is locked" whatever the busy timeout.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from evalkit.errors import StoreUnavailable
from evalkit.plugins import require_extra
from evalkit.tracking.request_scope import request_key
from evalkit.tracking.sql.idempotency import run_once
from evalkit.tracking.uri import StoreLocation

T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE_OPTION = "evalkit_write"
SQLITE_BUSY_TIMEOUT_MS = 60_000
# On top of the busy timeout, retry a locked write for this long before giving up.
WRITE_RETRY_SECONDS = 300.0
# A partial WAL checkpoint (a reader on an older snapshot) is retried this many times, ~0.3 s in all.
_CHECKPOINT_ATTEMPTS = 5


def create_store_engine(location: StoreLocation, create: bool = True) -> Engine:
    """Connect, check the server answers, and bring the schema to the current version.

    With ``create=False`` a store that does not exist yet (no SQLite file, or a database without
    evalkit's tables) raises :class:`StoreUnavailable` and nothing is created: the read-only
    commands use it so that a mistyped path is an error, not a new empty store.
    """
    if location.dialect == "sqlite":
        db_path = Path(location.sqlalchemy_url[len("sqlite:///"):])
        if not create and not db_path.is_file():
            raise StoreUnavailable(
                f"no tracking store at {db_path}: the file does not exist (check the tracking URI: "
                "--tracking-uri or $EVALKIT_TRACKING_URI)"
            )
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder for tracking store {db_path}: {exc}") from None
        engine = create_engine(
            location.sqlalchemy_url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _make_sqlite_transactional(engine)
    else:
        require_extra("psycopg", "postgres", "a PostgreSQL tracking store")
        engine = create_engine(
            location.sqlalchemy_url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10, "application_name": "evalkit"},
        )
    try:
        _upgrade_schema(engine, create, location.display_uri)
    except StoreUnavailable:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StoreUnavailable(f"cannot open tracking store {location.display_uri}: {reason}") from None
    return engine


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
        # Take transaction control from the sqlite3 module so BEGIN can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ILIKE stays insensitive).
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def write_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one write transaction, retrying while another writer holds the lock.

    All of ``work`` commits or none of it does. Inside a request served by the tracking server
    with an idempotency key, the key is committed with the work and a retried request gets the
    first attempt's result without running ``work`` again (``idempotency.run_once``).
    """
    scope = request_key.get()
    key = scope.next_key() if scope is not None else None  # outside the loop: the same key on each attempt
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    delay = 0.01
    key_collided = False
    while True:
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    return run_once(conn, key, work)
        except IntegrityError:
            if key is None or key_collided:
                raise
            key_collided = True  # a concurrent attempt of the same request committed first: replay it
        except OperationalError as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)


def checkpoint_wal(engine: Engine) -> bool:
    """Copy every committed transaction from a SQLite store's write-ahead log into the database
    file, so that the ``.db`` file alone (copied, mailed, attached to a CI job) holds every run.
    Returns True when the log was fully copied; does nothing on PostgreSQL.

    PASSIVE, not TRUNCATE or FULL: several processes may be logging into the same file, and the
    blocking modes wait (through the busy handler, up to a minute) for those writers and readers,
    and hold the write lock while they do, so closing one run would stall the others. PASSIVE
    never waits; it copies what no reader still needs. A reader holding an older snapshot can
    keep some frames in the log, so a partial checkpoint is retried a few times, briefly; what it
    still leaves is safe in the log and copied by the next checkpoint (any process's, or SQLite's
    own when the last connection closes).
    """
    if engine.dialect.name != "sqlite":
        return True
    # A raw connection: SQLAlchemy would wrap the pragma in a BEGIN, and SQLite refuses to
    # checkpoint from inside a transaction.
    connection = engine.raw_connection()
    try:
        for attempt in range(1, _CHECKPOINT_ATTEMPTS + 1):
            cursor = connection.cursor()
            busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cursor.close()
            # (0, -1, -1) when the database is not in WAL mode: nothing to copy.
            if not busy and copied >= frames:
                return True
            if attempt < _CHECKPOINT_ATTEMPTS:
                time.sleep(0.03 * attempt)
        return False
    except sqlite3.Error:  # the values are committed and safe in the log; a later checkpoint copies them
        return False
    finally:
        connection.close()


def _is_lock_error(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message or "deadlock" in message


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _upgrade_schema(engine: Engine, create: bool, display_uri: str) -> None:
    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    if current is None and not create:
        raise StoreUnavailable(f"no tracking store at {display_uri}: it holds no evalkit tables")
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StoreUnavailable(
            f"the tracking store {engine.url.render_as_string(hide_password=True)} has schema "
            f"version {current}, written by a newer evalkit; upgrade evalkit to open it"
        )

    def migrate(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Two processes opening a fresh database must not both create the tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(7253104)"))
        # Re-read under the lock: another process may have migrated meanwhile.
        if MigrationContext.configure(conn).get_current_revision() != head:
            command.upgrade(_alembic_config(conn), "head")

    write_transaction(engine, migrate)


def schema_version(engine: Engine) -> str | None:
    """The schema revision the store is at."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
