"""Stores are chosen by the tracking URI's scheme, from the ``evalkit.tracking_stores`` entry points,
and the SQL store behind them writes at once (the buffering is the wrapper's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from memory_store import MemoryStore

import evalkit as ek
from evalkit.entities import Metric, Param
from evalkit.tracking.buffered import BufferedStore
from evalkit.tracking.schemes import registered_schemes
from evalkit.tracking.sql.store import SqlStore
from evalkit.tracking.stores import get_store


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny third-party distribution that registers the memory store for ``memory://``."""
    dist = site / "evalkit_memory_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evalkit-memory-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evalkit.tracking_stores]\nmemory = evalkit_memory_plugin:Store\n")
    (site / "evalkit_memory_plugin.py").write_text("from memory_store import MemoryStore as Store\n")
    monkeypatch.syspath_prepend(str(site))


def test_a_store_registered_by_a_plugin_is_chosen_by_its_scheme_and_imported_when_used(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch)
    assert "memory" in registered_schemes()
    assert "evalkit_memory_plugin" not in sys.modules  # registering imports nothing

    ek.set_tracking_uri("memory://team")
    with ek.start_run() as run:
        ek.log_param("model", "gpt-4o")
        ek.log_metric("accuracy", 0.9)
    assert "evalkit_memory_plugin" in sys.modules
    opened = MemoryStore.opened["memory://team"]
    assert isinstance(get_store(), BufferedStore) and get_store().inner is opened
    assert opened.calls["log_batch"] == 1  # the wrapper batched both values into one write
    stored = opened.runs[run.info.run_id]
    assert stored.info.status is ek.RunStatus.FINISHED and stored.data.params == {"model": "gpt-4o"}


def test_an_unknown_scheme_is_refused_with_the_known_ones_listed(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch)
    with pytest.raises(ek.InvalidArgument) as info:
        ek.set_tracking_uri("mysql://ana:secret@db/evalkit")
    message = str(info.value)
    assert message.startswith("unsupported tracking URI scheme 'mysql' in 'mysql://ana:***@db/evalkit': use a file path")
    assert "(registered schemes: memory, postgres, postgresql, postgresql+psycopg, sqlite)" in message
    assert "secret" not in message


def test_the_builtin_schemes_are_the_sql_store(tmp_path):
    assert {"sqlite", "postgresql", "postgres", "postgresql+psycopg"} <= set(registered_schemes())
    for uri in ("plain.db", f"sqlite:///{tmp_path / 'file.db'}"):
        assert isinstance(ek.TrackingClient(uri).store.inner, SqlStore)  # type: ignore[attr-defined]


def test_the_sql_store_writes_each_batch_at_once_in_one_transaction(tracking_uri):
    store = SqlStore.from_uri(SqlStore.normalize_uri(tracking_uri))
    reader = SqlStore.from_uri(SqlStore.normalize_uri(tracking_uri))  # another connection pool: no shared memory
    try:
        run_id = store.create_run(store.get_or_create_default_experiment()).info.run_id
        store.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)], params=[Param("p", 1)])
        assert reader.get_run(run_id).data.metrics == {"m": 1.0}  # no flush needed: nothing is buffered
        with pytest.raises(ek.InvalidArgument, match="params cannot change"):
            store.log_batch(run_id, metrics=[Metric("m", 2.0, 1, 1)], params=[Param("p", 2)])
        with pytest.raises(ek.InvalidArgument, match="metric 'x' must be a real number"):
            store.log_batch(run_id, metrics=[Metric("m", 3.0, 1, 2), Metric("x", "high", 1, 0)])
        assert [m.value for m in reader.get_metric_history(run_id, "m")] == [1.0]  # neither batch wrote a value
        with pytest.raises(ek.InvalidArgument, match="metric 'x' must be a real number"):
            store.log_batch_and_update_run(run_id, "FINISHED", None, [Metric("x", "high", 1, 0)])
        assert reader.get_run(run_id).info.status is ek.RunStatus.RUNNING  # all or nothing
        info = store.log_batch_and_update_run(run_id, "FINISHED", None, [Metric("m", 5.0, 1, 5)])
        assert info.status is ek.RunStatus.FINISHED and reader.get_run(run_id).data.metrics == {"m": 5.0}
        with pytest.raises(ek.InvalidState, match="only RUNNING runs accept writes"):
            store.log_batch(run_id, metrics=[Metric("m", 4.0, 1, 3)])
    finally:
        store.close()
        reader.close()


def test_experiments_can_be_renamed(tracking_uri):
    client = ek.TrackingClient(tracking_uri)
    first = client.create_experiment("first")
    client.create_experiment("taken")
    client.store.rename_experiment(first, "renamed")
    assert client.get_experiment(first).name == "renamed"
    with pytest.raises(ek.AlreadyExists, match="'taken' already exists"):
        client.store.rename_experiment(first, "taken")
    with pytest.raises(ek.InvalidArgument, match="non-empty string"):
        client.store.rename_experiment(first, " ")
