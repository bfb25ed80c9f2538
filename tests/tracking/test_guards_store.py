"""Guards for the SQLite writer: every write transaction starts with ``BEGIN IMMEDIATE``.

The retry loop of ``write_transaction`` hides the "database is locked" errors that a deferred
BEGIN causes under contention, so the multi-process test passes without it; here the SQL that
SQLite itself executes is traced instead."""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest
from sqlalchemy import event

import evalkit as ek

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)
_BEGIN = re.compile(r"^\s*BEGIN\b(.*)$", re.IGNORECASE)


@pytest.fixture
def traced(tmp_path):
    """A client on a fresh SQLite store, and the list of statements SQLite runs from now on."""
    client = ek.TrackingClient(f"sqlite:///{tmp_path / 'store.db'}")
    engine = client.store.inner.engine
    statements: list[str] = []
    lock = threading.Lock()

    def trace(sql: str) -> None:
        with lock:
            statements.append(sql)

    @event.listens_for(engine, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.set_trace_callback(trace)

    engine.dispose()  # connections made from now on are traced
    yield client, statements
    event.remove(engine, "connect", _trace)


def write_transactions(statements: list[str]) -> list[tuple[str, list[str]]]:
    """(the BEGIN statement, the writes it covered) for every transaction that wrote."""
    found: list[tuple[str, list[str]]] = []
    begin: str | None = None
    writes: list[str] = []
    for sql in statements:
        if _BEGIN.match(sql):
            begin, writes = sql.strip(), []
        elif re.match(r"^\s*(COMMIT|ROLLBACK|END)\b", sql, re.IGNORECASE):
            if writes:
                found.append((begin or "(autocommit)", writes))
            begin, writes = None, []
        elif _WRITE.match(sql):
            if begin is None:
                found.append(("(autocommit)", [sql]))
            else:
                writes.append(sql)
    return found


def test_every_sqlite_write_transaction_begins_immediate(traced):
    client, statements = traced
    experiment = client.create_experiment("guards")
    run = client.create_run(experiment).info.run_id
    client.log_param(run, "p", "1")
    client.log_metric(run, "m", 1.0)
    client.set_tag(run, "t", "x")
    client.flush()
    client.set_terminated(run)
    client.flush()

    transactions = write_transactions(statements)
    assert len(transactions) >= 3, statements  # experiment, run, batch, end of run
    for begin, writes in transactions:
        assert begin.upper().split() == ["BEGIN", "IMMEDIATE"], (begin, writes[:2])
    # Reads do not queue behind writers: their transactions stay deferred.
    before = len(statements)
    assert client.get_run(run).data.metrics == {"m": 1.0}
    begins = [sql.strip().upper() for sql in statements[before:] if _BEGIN.match(sql)]
    assert begins and all(b == "BEGIN" for b in begins), begins


def test_write_transaction_retries_lock_errors_only(traced, monkeypatch):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from evalkit.tracking.sql import engine as engine_module

    client, _ = traced
    engine = client.store.inner.engine
    calls: list[int] = []

    def flaky(message: str, failures: int):
        def work(conn):
            calls.append(1)
            if len(calls) <= failures:
                raise OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))
            return conn.execute(text("SELECT 7")).scalar()
        return work

    for message in ("database is locked", "Database is BUSY", "deadlock detected"):
        calls.clear()
        assert engine_module.write_transaction(engine, flaky(message, 2)) == 7
        assert len(calls) == 3, message
    calls.clear()
    with pytest.raises(OperationalError, match="no such table"):
        engine_module.write_transaction(engine, flaky("no such table: runs", 1))
    assert len(calls) == 1  # not a lock error: never retried
    monkeypatch.setattr(engine_module, "WRITE_RETRY_SECONDS", -1.0)
    calls.clear()
    with pytest.raises(OperationalError, match="locked"):
        engine_module.write_transaction(engine, flaky("database is locked", 5))
    assert len(calls) == 1  # past its deadline: the lock error is raised


def test_experiment_tags_lifecycle_and_run_tag_deletion(traced):
    client, _ = traced
    experiment = client.create_experiment("tagged")
    client.set_experiment_tag(experiment, "team", "search")
    client.set_experiment_tag(experiment, "team", "ranking")  # overwritten, not duplicated
    client.set_experiment_tag(experiment, "owner", 42)
    assert client.get_experiment(experiment).tags == {"team": "ranking", "owner": "42"}

    before = client.get_experiment(experiment).last_update_time
    client.delete_experiment(experiment)
    deleted = client.get_experiment(experiment)
    assert deleted.lifecycle_stage == "deleted" and deleted.last_update_time >= before
    with pytest.raises(ek.InvalidState, match="is deleted; restore it first"):
        client.set_experiment_tag(experiment, "team", "x")
    client.restore_experiment(experiment)
    assert client.get_experiment(experiment).lifecycle_stage == "active"
    client.set_experiment_tag(experiment, "team", "x")
    assert client.get_experiment(experiment).tags["team"] == "x"
    with pytest.raises(ek.NotFound, match="no experiment with id '999'"):
        client.set_experiment_tag("999", "team", "x")
    with pytest.raises(ek.NotFound):
        client.delete_experiment("999")

    run = client.create_run(experiment).info.run_id
    client.set_tag(run, "keep", "1")
    client.set_tag(run, "drop", "2")
    client.delete_tag(run, "drop")  # flushes the queued tags first
    assert client.get_run(run).data.tags.get("drop") is None
    assert client.get_run(run).data.tags["keep"] == "1"
    with pytest.raises(ek.NotFound, match=f"run {run} has no tag 'drop'"):
        client.delete_tag(run, "drop")
    with pytest.raises(ek.NotFound):
        client.delete_tag("0" * 32, "keep")
