"""Engines that behave the same on SQLite and PostgreSQL, and the schema migrations.

SQLite is made safe for several writer processes: WAL (readers never block), a long busy timeout,
and ``BEGIN IMMEDIATE`` for write transactions so a reader never has to upgrade its lock mid-way,
the case where SQLite gives up at once with "database is locked" whatever the busy timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from evalkit.errors import StoreUnavailable
from evalkit.tracking.uri import StoreLocation

T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE_OPTION = "evalkit_write"
SQLITE_BUSY_TIMEOUT_MS = 60_000
# On top of the busy timeout, retry a locked write for this long before giving up.
WRITE_RETRY_SECONDS = 300.0


def create_store_engine(location: StoreLocation) -> Engine:
    """Connect, check the server answers, and bring the schema to the current version."""
    if location.dialect == "sqlite":
        db_path = Path(location.sqlalchemy_url[len("sqlite:///"):])
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
        engine = create_engine(
            location.sqlalchemy_url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10, "application_name": "evalkit"},
        )
    try:
        _upgrade_schema(engine)
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

    All of ``work`` commits or none of it does.
    """
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    delay = 0.01
    while True:
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    return work(conn)
        except OperationalError as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)


def _is_lock_error(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message or "deadlock" in message


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _upgrade_schema(engine: Engine) -> None:
    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
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
