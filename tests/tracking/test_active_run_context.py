"""The active run lives in a context variable: code evalkit runs on the user's behalf (a model
function on a worker thread, an asyncio task, a notebook's event loop) sees the run the user
started, while threads started on their own keep their own runs."""

from __future__ import annotations

import asyncio
import threading

import pandas as pd

import evalkit as ek


def data(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"inputs": [f"q{i}" for i in range(rows)], "ground_truth": [f"q{i}" for i in range(rows)]})


def test_a_model_function_sees_the_run_its_caller_started():
    seen = []

    def model(question: str) -> str:  # run by evaluate() on a worker thread
        seen.append(ek.active_run().info.run_id if ek.active_run() else None)
        return question

    async def async_model(question: str) -> str:  # run as an asyncio task
        seen.append(ek.active_run().info.run_id if ek.active_run() else None)
        return question

    runs = []
    for fn in (model, async_model):
        with ek.start_run() as run:
            ek.evaluate(model=fn, data=data(), targets="ground_truth", progress=False, report=False)
        runs.append(run.info.run_id)
    assert seen == [runs[0]] * 3 + [runs[1]] * 3


def test_evaluate_inside_a_running_event_loop_logs_into_the_active_run():
    async def notebook_cell() -> str:
        return ek.evaluate(model=lambda q: q, data=data(), targets="ground_truth", progress=False, report=False).run_id

    with ek.start_run() as run:
        assert asyncio.run(notebook_cell()) == run.info.run_id
    assert ek.get_run(run.info.run_id).data.metrics["rows/total"] == 3


def test_evaluate_with_an_experiment_leaves_the_active_experiment_alone():
    ek.set_experiment("mine")
    result = ek.evaluate(model=lambda q: q, data=data(), experiment="theirs", progress=False, report=False)
    assert ek.get_experiment(ek.get_run(result.run_id).info.experiment_id).name == "theirs"
    with ek.start_run() as run:
        pass
    assert ek.get_experiment(run.info.experiment_id).name == "mine"


def test_threads_started_on_their_own_do_not_share_runs():
    inner: list[str | None] = []

    def worker() -> None:
        inner.append(ek.active_run().info.run_id if ek.active_run() else None)
        with ek.start_run() as own:  # no "already active" error: this thread has no run yet
            inner.append(own.info.run_id)

    with ek.start_run() as run:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert ek.active_run().info.run_id == run.info.run_id
    assert inner[0] is None and inner[1] != run.info.run_id
