"""BufferedStore batches the writes of any TrackingStore: here around an in-memory test double
whose calls are counted."""

from __future__ import annotations

import threading
import time

import pytest
from memory_store import MemoryStore

import evalkit as ek
from evalkit.entities import Metric, Param, RunTag
from evalkit.tracking import buffered
from evalkit.tracking.buffered import BufferedStore


@pytest.fixture
def inner() -> MemoryStore:
    return MemoryStore()


def make(inner: MemoryStore, max_items: int = 1000, max_age: float = 60.0) -> tuple[BufferedStore, str]:
    store = BufferedStore(inner, max_items=max_items, max_age=max_age)
    run_id = store.create_run(store.create_experiment("exp")).info.run_id
    return store, run_id


def metric(i: int, key: str = "loss") -> Metric:
    return Metric(key, float(i), 1_700_000_000_000 + i, i)


def test_values_are_queued_and_written_in_one_batch(inner):
    store, run_id = make(inner)
    for i in range(10):
        store.log_batch(run_id, metrics=[metric(i)])
    store.log_batch(run_id, params=[Param("lr", 0.1)], tags=[RunTag("t", "a")])
    store.log_batch(run_id, tags=[RunTag("t", "b")])
    assert inner.calls["log_batch"] == 0
    store.flush()
    assert inner.calls["log_batch"] == 1
    (batch_run, metrics, params, tags), = inner.batches
    assert batch_run == run_id and [m.value for m in metrics] == [float(i) for i in range(10)]
    assert params == [Param("lr", "0.1")] and tags == [RunTag("t", "b")]  # checked form; last tag value wins
    store.flush()
    assert inner.calls["log_batch"] == 1  # nothing left to write


def test_a_full_buffer_is_flushed_at_once(inner):
    store, run_id = make(inner, max_items=5)
    for i in range(4):
        store.log_batch(run_id, metrics=[metric(i)])
    assert inner.calls["log_batch"] == 0
    store.log_batch(run_id, metrics=[metric(4)])
    assert inner.calls["log_batch"] == 1 and len(inner.batches[0][1]) == 5


@pytest.mark.parametrize("read", ["get_run", "get_metric_history", "search_runs"])
def test_every_read_of_run_data_flushes_first(inner, read):
    store, run_id = make(inner)
    store.log_batch(run_id, metrics=[metric(0), metric(1)])
    if read == "get_run":
        assert store.get_run(run_id).data.metrics == {"loss": 1.0}
    elif read == "get_metric_history":
        assert [m.value for m in store.get_metric_history(run_id, "loss")] == [0.0, 1.0]
    else:
        runs, _ = store.search_runs([inner.runs[run_id].info.experiment_id])
        assert runs[0].data.metrics == {"loss": 1.0}
    assert inner.calls["log_batch"] == 1
    assert [method for method, _ in inner.log[-2:]] == ["log_batch", read]


def test_old_values_are_flushed_in_the_background(inner):
    store, run_id = make(inner, max_age=0.05)
    store.log_batch(run_id, metrics=[metric(0)])
    deadline = time.monotonic() + 5
    while not inner.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(inner.batches) == 1 and inner.batches[0][1] == [metric(0)]
    store.close()


def test_ending_a_run_writes_that_runs_values_then_ends_it(inner):
    store, first = make(inner)
    second = store.create_run(inner.runs[first].info.experiment_id).info.run_id
    store.log_batch(first, metrics=[metric(0)])
    store.log_batch(second, metrics=[metric(1)])
    info = store.update_run(first, "FINISHED")
    assert info.status is ek.RunStatus.FINISHED
    assert inner.log[-2:] == [("log_batch", first), ("update_run", first)]
    assert [b[0] for b in inner.batches] == [first]  # the other run's value waits for its own flush
    with pytest.raises(ek.InvalidState, match="is FINISHED: only RUNNING runs accept writes"):
        store.log_batch(first, metrics=[metric(2)])
    store.update_run(first, "RUNNING")  # reopening makes it writable again
    store.log_batch(first, metrics=[metric(2)])
    store.flush()
    assert sorted(b[0] for b in inner.batches[1:]) == sorted([first, second])


def test_an_unknown_status_is_refused_before_the_runs_values_are_touched(inner):
    store, run_id = make(inner)
    store.log_batch(run_id, metrics=[metric(0)])
    with pytest.raises(ek.InvalidArgument, match="unknown run status 'DONE': use one of RUNNING, FINISHED"):
        store.update_run(run_id, "DONE")
    assert inner.calls["log_batch"] == 0
    store.update_run(run_id, "finished")
    assert [m.value for m in store.get_metric_history(run_id, "loss")] == [0.0]


def test_params_are_immutable_inside_the_buffer_and_after_it(inner):
    store, run_id = make(inner)
    store.log_batch(run_id, params=[Param("lr", "0.01")])
    store.log_batch(run_id, params=[Param("lr", 0.01)])  # the same value again is fine
    with pytest.raises(ek.InvalidArgument, match=r"param 'lr' of run \w+ is already '0.01'; params cannot change "
                                                 r"\(tried '0.02'\)\. Log it under another key"):
        store.log_batch(run_id, params=[Param("lr", "0.02")])
    with pytest.raises(ek.InvalidArgument, match="params cannot change"):
        store.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")])  # within one batch too
    assert inner.calls["log_batch"] == 0
    store.flush()
    with pytest.raises(ek.InvalidArgument, match="params cannot change"):
        store.log_batch(run_id, params=[Param("lr", "0.03")])
    assert inner.runs[run_id].data.params == {"lr": "0.01"}


def test_params_of_a_run_created_elsewhere_are_read_from_the_store(inner):
    store, run_id = make(inner)
    inner.runs[run_id].data.params["lr"] = "0.01"  # logged by another process
    fresh = BufferedStore(inner)  # which shares no memory with this one
    with pytest.raises(ek.InvalidArgument, match="params cannot change"):
        fresh.log_batch(run_id, params=[Param("lr", "0.02")])
    fresh.log_batch(run_id, params=[Param("lr", "0.01")])


def test_bad_values_are_refused_when_logged_and_nothing_of_the_batch_is_queued(inner):
    store, run_id = make(inner)
    with pytest.raises(ek.InvalidArgument, match="metric 'bad' must be a real number, got str"):
        store.log_batch(run_id, metrics=[metric(0), Metric("bad", "high", 1, 0)], params=[Param("p", "v")])
    with pytest.raises(ek.NotFound, match="no run with id 'nope'"):
        store.log_batch("nope", metrics=[metric(0)])
    store.flush()
    assert inner.calls["log_batch"] == 0


def test_a_background_flush_error_is_raised_by_the_next_call_and_the_values_are_kept(inner):
    store, run_id = make(inner, max_age=0.01)
    inner.fail_next_log_batch = ek.StoreUnavailable("the server is down")
    store.log_batch(run_id, metrics=[metric(0)])
    deadline = time.monotonic() + 5
    while store._background_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ek.StoreUnavailable, match="the server is down"):
        store.log_batch(run_id, metrics=[metric(1)])
    # raised once; the value the failed flush held is written by the next one, in order
    assert [m.value for m in store.get_metric_history(run_id, "loss")] == [0.0]
    store.log_batch(run_id, metrics=[metric(1)])
    assert [m.value for m in store.get_metric_history(run_id, "loss")] == [0.0, 1.0]
    store.close()


def test_a_read_waits_for_a_flush_under_way(inner):
    store, run_id = make(inner)
    store.log_batch(run_id, metrics=[metric(0)])
    inner.block_log_batch = threading.Event()
    flusher = threading.Thread(target=store.flush)
    flusher.start()
    assert inner.log_batch_entered.wait(5)
    seen: list[dict[str, float]] = []
    reader = threading.Thread(target=lambda: seen.append(store.get_run(run_id).data.metrics))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and not seen  # the read is held back while the flush writes
    inner.block_log_batch.set()
    flusher.join(5)
    reader.join(5)
    assert seen == [{"loss": 0.0}]


def test_values_are_flushed_and_the_store_closed_at_exit(inner):
    store, run_id = make(inner)
    store.log_batch(run_id, metrics=[metric(0)])
    buffered._close_all_at_exit()
    assert len(inner.batches) == 1 and inner.closed  # closing is what checkpoints a SQLite store


def test_values_are_flushed_on_close(inner):
    store, run_id = make(inner)
    store.log_batch(run_id, metrics=[metric(1)])
    flusher = store._flusher
    store.close()
    assert len(inner.batches) == 1 and inner.closed
    flusher.join(5)
    assert not flusher.is_alive()  # closing stops the background thread
