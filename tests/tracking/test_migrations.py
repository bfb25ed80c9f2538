"""The schema is versioned: stores written by earlier versions open, newer ones are refused clearly."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

import evalkit as ek
from evalkit.tracking.sql.engine import _MIGRATIONS, create_store_engine, schema_version
from evalkit.tracking.uri import parse_tracking_uri

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def test_a_new_store_is_at_the_latest_schema(tmp_path):
    ek.TrackingClient(str(tmp_path / "new.db"))
    engine = create_store_engine(parse_tracking_uri(str(tmp_path / "new.db")))
    assert schema_version(engine) == ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    engine.dispose()


def test_the_migrations_build_the_tables_schema_py_describes(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from evalkit.tracking.sql.schema import metadata

    engine = create_store_engine(parse_tracking_uri(str(tmp_path / "new.db")))
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_a_store_written_by_evalkit_0_1_0_still_opens(tmp_path):
    """store-0.1.0.db was written by evalkit 0.1.0 (schema 0001); keep it and this test forever."""
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store-0.1.0.db", path)
    client = ek.TrackingClient(str(path))
    experiment = client.get_experiment_by_name("written-by-0.1.0")
    runs, _ = client.search_runs([experiment.experiment_id], "metrics.accuracy > 0.5")
    assert [r.data.params["model"] for r in runs] == ["gpt-4o"]
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [0.9, 0.5, 0.2]
    assert schema_version(client.store.inner.engine) == ScriptDirectory(str(_MIGRATIONS)).get_current_head()


def test_a_store_from_a_newer_evalkit_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "future.db"
    ek.TrackingClient(str(path)).store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    from evalkit.tracking.stores import close_stores

    close_stores()
    with pytest.raises(ek.StoreUnavailable, match="schema version 9999, written by a newer evalkit"):
        ek.TrackingClient(str(path))


def _open(path: str, barrier) -> None:  # noqa: ANN001
    barrier.wait()
    client = ek.TrackingClient(path)
    client.create_run(client.store.get_or_create_default_experiment())


@pytest.mark.slow
def test_processes_opening_a_fresh_store_together_migrate_it_once(tmp_path):
    path = str(tmp_path / "race.db")
    context = mp.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_open, args=(path, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    client = ek.TrackingClient(path)
    assert len(client.search_runs([client.store.get_or_create_default_experiment()])[0]) == 4
