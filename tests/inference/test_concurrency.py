"""Several processes logging into one store at once lose nothing and never see "database is locked"."""

from __future__ import annotations

import multiprocessing as mp

import pytest

import evalkit as ek
from evalkit.tracking.sql.engine import create_store_engine
from evalkit.tracking.uri import parse_tracking_uri

pytestmark = pytest.mark.slow

PROCESSES = 4
VALUES = 1000


def _log_from_process(uri: str, run_id: str, worker: int, barrier) -> None:  # noqa: ANN001
    from evalkit.tracking.client import TrackingClient

    client = TrackingClient(uri)
    barrier.wait()  # start together so the writers really contend
    for i in range(VALUES):
        client.log_metric(run_id, f"worker_{worker}", float(i), step=i)
        if i % 50 == 0:
            client.flush()  # many small transactions: the worst case for lock contention
    own = client.create_run(client.get_run(run_id).info.experiment_id, run_name=f"own-{worker}").info.run_id
    client.log_param(own, "worker", worker)
    client.set_terminated(own)
    client.flush()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_four_processes_log_exactly_four_thousand_values(backend, tmp_path, request):
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        uri = request.getfixturevalue("postgres").create_database("concurrency")
    client = ek.TrackingClient(uri)
    experiment_id = client.create_experiment("shared")
    run_id = client.create_run(experiment_id).info.run_id

    context = mp.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [context.Process(target=_log_from_process, args=(uri, run_id, w, barrier)) for w in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    engine = create_store_engine(parse_tracking_uri(uri))  # count the rows themselves, past every cache
    with engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM metric_history WHERE run_id = ?" if backend == "sqlite"
                                     else "SELECT count(*) FROM metric_history WHERE run_id = %s", (run_id,)).scalar()
    engine.dispose()
    assert total == PROCESSES * VALUES
    run = client.get_run(run_id)
    assert run.data.metrics == {f"worker_{w}": float(VALUES - 1) for w in range(PROCESSES)}
    own, _ = client.search_runs([experiment_id], "attributes.run_name LIKE 'own-%'")
    assert sorted(r.data.params["worker"] for r in own) == ["0", "1", "2", "3"]
