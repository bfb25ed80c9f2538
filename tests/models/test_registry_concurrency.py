"""Two processes promoting two versions of one model to Production at the same moment end with
exactly one Production version, and both moves in the history (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

import evalkit as ek

ROUNDS = 3


def _promote(uri: str, first_version: int, barrier) -> None:  # noqa: ANN001 - a multiprocessing barrier
    client = ek.TrackingClient(uri)
    for round_ in range(ROUNDS):
        barrier.wait(timeout=60)
        client.transition_model_version_stage("RAGBot", first_version + 2 * round_, "Production",
                                              archive_existing_versions=True)


@pytest.mark.slow
def test_concurrent_promotions_leave_one_production_version_and_record_both(tracking_uri):
    with ek.start_run():
        info = ek.log_model("evalkit:/extractive")
    for _ in range(2 * ROUNDS):
        ek.register_model(info.model_uri, "RAGBot")
    ek.flush()
    context = mp.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_promote, args=(tracking_uri, first, barrier)) for first in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    client = ek.TrackingClient()
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 'RAGBot'")}
    assert list(stages.values()).count("Production") == 1
    assert set(stages.values()) == {"Production", "Archived"}
    history = client.get_model_version_history("RAGBot")
    promoted = [e.version for e in history if e.to_value == "Production"]
    assert sorted(promoted) == list(range(1, 2 * ROUNDS + 1))
    # Replaying the history gives the final state: each move saw the one before it.
    replayed: dict[int, str] = {}
    for event in history:
        assert replayed.get(event.version, "None") == event.from_value
        replayed[event.version] = event.to_value
    assert replayed == stages
