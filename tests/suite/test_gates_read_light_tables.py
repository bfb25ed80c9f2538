"""The suite's gates on a results table kept on disk (evalkit/suite/job.py ``_scores``): only the
columns without texts are held in memory, and every gate, worst rows quoted included, is the one
the whole table gives, across row groups and on other data (rows paired by input)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.evaluation import engine, results
from evalkit.evaluation.results import TEXT_COLUMNS
from evalkit.evaluation.run_evaluators import load_evaluators
from evalkit.suite.expressions import parse_threshold
from evalkit.suite.gates import Comparison, RunScores, check_threshold, compare
from evalkit.suite.job import _scores

ROWS = 23


def frame(rows: int, wrong_every: int) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"Where is lamp {i}?" for i in range(rows)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 4}." for i in range(rows)],
        "prediction": [f"Lamp {i} is lost." if i % wrong_every == 0 else f"Lamp {i} is in aisle {i % 4}."
                       for i in range(rows)],
    })


def whole(client: ek.TrackingClient, run_id: str) -> RunScores:
    run = client.get_run(run_id)
    return RunScores(run_id, run.data.metrics, client.load_table(run_id, "eval_results_table.parquet"),
                     run.data.params.get("dataset_digest"), load_evaluators(client, run))


@pytest.mark.parametrize("same_data", [True, False])
def test_gates_on_the_light_table_are_the_gates_of_the_whole_table(tmp_path, monkeypatch, same_data):
    monkeypatch.setattr(engine, "CHUNK_ROWS", 5)
    monkeypatch.setattr(results, "ROW_GROUP_ROWS", 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = ek.evaluate(data=frame(ROWS, 7) if same_data else frame(ROWS, 7).iloc[4:], targets="ground_truth",
                           predictions="prediction", progress=False, report=False)
        now = ek.evaluate(data=frame(ROWS, 3), targets="ground_truth", predictions="prediction", progress=False,
                          report=False)
    client = ek.TrackingClient()
    light, light_base = _scores(client, now.run_id, tmp_path), _scores(client, base.run_id, tmp_path)
    assert not set(TEXT_COLUMNS) & set(light.table.columns) and len(light.table) == ROWS
    full, full_base = whole(client, now.run_id), whole(client, base.run_id)

    gates = [check_threshold(parse_threshold("exact_match/v1/mean >= 0.99"), run) for run in (light, full)]
    assert gates[0] == gates[1] and gates[0].status == "failed" and len(gates[0].worst_rows) == 5
    assert gates[0].worst_rows[0]["input"] == "Where is lamp 0?" and gates[0].worst_rows[0]["output"] == "Lamp 0 is lost."
    for rule in (Comparison("exact_match/v1/mean", "paired"), Comparison("token_f1/v1/mean", "tolerance", 0.01)):
        assert dataclasses.asdict(compare(rule, light, light_base)) == dataclasses.asdict(compare(rule, full, full_base))
    paired = compare(Comparison("exact_match/v1/mean", "paired"), light, light_base)
    assert paired.worst_rows and all(Path(tmp_path, f"{r}.parquet").exists() for r in (now.run_id, base.run_id))
