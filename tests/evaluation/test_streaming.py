"""evaluate() works a chunk of rows at a time: the results table, the metrics and the report are
the same whatever the chunk size, and a resumed run still sends only the rows without an answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from evalkit.reports.model import (
    RunView,
    build_report,
    diff_segments,
    load_run,
    row_records,
    score_evaluators,
)

import evalkit as ek
from evalkit.evaluation import engine, results
from evalkit.evaluation.data import _digest, load_dataset
from evalkit.evaluation.scoring import Score
from evalkit.inference.executors import Executor

ROWS = 11


def data(rows: int = ROWS) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"Where is lamp {i}?" for i in range(rows)],
        # row 3 has no passages (faithfulness does not apply); row 6 a passage that does not hold the answer
        "contexts": [[] if i == 3 else [f"Lamp {i} is in aisle {i % 4}.", f"Lamp {i} ships in {i % 3} days."]
                     for i in range(rows)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 4}." for i in range(rows)],
        "prediction": ["" if i == 5 else f"Lamp {i} is in aisle {i % 3}." for i in range(rows)],
    })


@ek.evaluator(name="sometimes_raw")
def sometimes_raw(row: ek.EvalRow) -> Score | None:
    """Keeps a raw reply for one row only (a column only one chunk has), fails one row, skips one."""
    if row.index == 8:
        return Score(None, error="no verdict", raw="the judge said nothing useful")
    if row.index == 2:
        return None
    return Score(float(row.index % 2), details={"half": row.index / 2})


def _same_metrics(one: dict[str, float], other: dict[str, float]) -> None:
    assert one.keys() == other.keys()
    for key, value in one.items():
        assert value == other[key] or (math.isnan(value) and math.isnan(other[key])), key


def _files(result: ek.EvaluationResult) -> tuple[pd.DataFrame, str, object]:
    parquet = Path(result.artifacts["parquet"])
    return pd.read_parquet(parquet), Path(result.artifacts["json"]).read_text(), pq.read_schema(parquet)


def test_given_predictions_in_several_chunks_give_the_same_table_metrics_and_files(monkeypatch):
    kwargs = dict(data=data(), targets="ground_truth", predictions="prediction", extra_metrics=["sometimes_raw"],
                  progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ek.evaluate(**kwargs)
        monkeypatch.setattr(engine, "CHUNK_ROWS", 3)
        monkeypatch.setattr(results, "ROW_GROUP_ROWS", 3)
        monkeypatch.setattr("evalkit.evaluators.embedder.KEPT_VECTORS", 4)  # texts embedded again give the same vectors
        chunked = ek.evaluate(**kwargs)
    pd.testing.assert_frame_equal(chunked.tables["eval_results_table"], whole.tables["eval_results_table"])
    table = whole.tables["eval_results_table"]
    assert list(table["row"]) == list(range(ROWS)) and table["contexts"][0] == ["Lamp 0 is in aisle 0.",
                                                                               "Lamp 0 ships in 0 days."]
    assert table["sometimes_raw/raw"].notna().sum() == 1 and "exact_match/raw" not in table
    _same_metrics(chunked.metrics, whole.metrics)
    assert whole.metrics["sometimes_raw/v1/rows_failed"] == 1 and whole.metrics["sometimes_raw/v1/rows_not_applicable"] == 1
    (frame, text, schema), (frame_chunked, text_chunked, schema_chunked) = _files(whole), _files(chunked)
    pd.testing.assert_frame_equal(frame_chunked, frame)
    assert text_chunked == text and schema_chunked.equals(schema)
    assert json.loads(text)["columns"] == list(table.columns) and len(json.loads(text)["data"]) == ROWS
    assert pq.ParquetFile(chunked.artifacts["parquet"]).num_row_groups == 4  # of ROW_GROUP_ROWS rows
    assert pq.ParquetFile(whole.artifacts["parquet"]).num_row_groups == 1


def test_rows_are_scored_while_later_rows_are_answered_and_the_table_is_the_same(monkeypatch):
    """Answers arrive out of order (later rows first); each slice of consecutive rows is scored
    once all its rows are in, before the last answers arrive, and the table is the same as when
    every row is scored at the end."""
    events: list[tuple[str, int]] = []

    async def answer(question: str) -> str:
        row = int(question.removeprefix("Where is lamp ").removesuffix("?"))
        await asyncio.sleep(0.02 * (row % 4))  # rows 0, 4, 8 first: slices complete out of step
        events.append(("answer", row))
        return f"Lamp {row} is in aisle {row % 4}."

    @ek.evaluator(name="scoring_order")
    def scoring_order(row: ek.EvalRow) -> Score:
        events.append(("score", row.index))
        return Score(1.0)

    kwargs = dict(model=answer, data=data(), targets="ground_truth", cache="off", progress=False, concurrency=ROWS,
                  extra_metrics=["scoring_order"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(engine, "SCORE_ROWS", ROWS)
        whole = ek.evaluate(**kwargs)
        events.clear()
        monkeypatch.setattr(engine, "SCORE_ROWS", 2)
        sliced = ek.evaluate(**kwargs)
    timed = [c for c in whole.tables["eval_results_table"].columns if "latency" in c]
    pd.testing.assert_frame_equal(sliced.tables["eval_results_table"].drop(columns=timed),
                                  whole.tables["eval_results_table"].drop(columns=timed))
    _same_metrics({k: v for k, v in sliced.metrics.items() if "latency" not in k},
                  {k: v for k, v in whole.metrics.items() if "latency" not in k})
    scored = [row for kind, row in events if kind == "score"]
    assert scored == list(range(ROWS))  # in row order, each once
    last_answer = max(i for i, (kind, _) in enumerate(events) if kind == "answer")
    first_score = min(i for i, (kind, _) in enumerate(events) if kind == "score")
    assert first_score < last_answer  # rows 0-1 were scored while rows 3, 7 were still being answered


def test_a_model_run_in_several_chunks_gives_the_same_table_and_metrics(monkeypatch):
    def answer(question: str, contexts: list[str]) -> str:
        if question.endswith((" 4?", " 5?")):  # a whole chunk of rows without token counts
            raise RuntimeError("the model is down for lamps 4 and 5")
        return contexts[0] if contexts else "I do not know."

    kwargs = dict(model=answer, data=data(), targets="ground_truth", cache="off", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ek.evaluate(**kwargs)
        monkeypatch.setattr(engine, "CHUNK_ROWS", 2)
        chunked = ek.evaluate(**kwargs)
    timed = [c for c in whole.tables["eval_results_table"].columns if "latency" in c]
    pd.testing.assert_frame_equal(chunked.tables["eval_results_table"].drop(columns=timed),
                                  whole.tables["eval_results_table"].drop(columns=timed))
    untimed = {k: v for k, v in whole.metrics.items() if "latency" not in k}
    _same_metrics({k: v for k, v in chunked.metrics.items() if "latency" not in k}, untimed)
    assert whole.metrics["error_count"] == 2 and whole.metrics["rows/total"] == ROWS
    (_, text, schema), (_, text_chunked, schema_chunked) = _files(whole), _files(chunked)
    assert schema_chunked.equals(schema) and schema.field("input_tokens").type == "double"
    assert [row[:2] for row in json.loads(text_chunked)["data"]] == [row[:2] for row in json.loads(text)["data"]]
    tokens = json.loads(text)["columns"].index("input_tokens")
    assert [row[tokens] for row in json.loads(text_chunked)["data"]] == [row[tokens] for row in json.loads(text)["data"]]
    assert '"input_tokens"' in text and isinstance(json.loads(text_chunked)["data"][0][tokens], float)


SCORED: list[int] = []  # the rows "counted" scored


@ek.evaluator(name="counted")
def counted(row: ek.EvalRow) -> float:
    SCORED.append(row.index)
    return float(len(row.output or ""))


class ScoresTheOddRows(Executor):
    """Answers here, then scores the odd rows with the evaluation's scorer, as an executor's worker
    would, and hands their scores back: the engine must score only the others."""

    name = "odd-rows"

    def __init__(self) -> None:
        self.scoring = None
        self.handed: list[int] = []

    def score_with(self, scoring) -> bool:
        self.scoring = scoring
        return True

    async def answer(self, runner, jobs, record) -> None:
        answered = []
        await runner.answer_here(jobs, lambda outcome: (record(outcome), answered.append(outcome)))
        by_index = {job.index: job for job in jobs}
        odd = [outcome for outcome in answered if outcome.index % 2]
        sent = [by_index[outcome.index] for outcome in odd]
        scores = await self.scoring.scorer.score(sent, odd, self.scoring.row_data(sent))
        for outcome, row_scores in zip(odd, scores, strict=True):
            self.scoring.take(outcome.index, row_scores)
            self.handed.append(outcome.index)


def test_rows_an_executor_scored_are_not_scored_again_and_the_run_is_the_same(monkeypatch):
    def answer(question: str, contexts: list[str]) -> str:
        if question.endswith((" 4?", " 5?")):
            raise RuntimeError("the model is down for lamps 4 and 5")
        return contexts[0] if contexts else "I do not know."

    kwargs = dict(model=answer, data=data(), targets="ground_truth", cache="off", progress=False,
                  extra_metrics=["counted"])
    executor = ScoresTheOddRows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ek.evaluate(**kwargs)
        monkeypatch.setattr(engine, "CHUNK_ROWS", 3)
        SCORED.clear()
        split = ek.evaluate(**kwargs, executor=executor)
    # Each answered row scored once, by the executor or by the engine (failed rows do not reach the function).
    assert sorted(SCORED) == [row for row in range(ROWS) if row not in (4, 5)]
    assert sorted(executor.handed) == list(range(1, ROWS, 2))
    # Only the evaluators that need no judge and see no judge cost go to an executor.
    assert "latency" not in [e.name for e in executor.scoring.scorer.evaluators]
    assert {"exact_match", "faithfulness", "toxicity", "counted"} <= {e.name for e in executor.scoring.scorer.evaluators}
    timed = [c for c in whole.tables["eval_results_table"].columns if "latency" in c]
    pd.testing.assert_frame_equal(split.tables["eval_results_table"].drop(columns=timed),
                                  whole.tables["eval_results_table"].drop(columns=timed), check_exact=True)
    untimed = {k: v for k, v in whole.metrics.items() if "latency" not in k}
    _same_metrics({k: v for k, v in split.metrics.items() if "latency" not in k}, untimed)
    assert ek.get_run(split.run_id).data.params["executor"] == "odd-rows"


def test_resume_over_several_chunks_sends_only_the_rows_without_an_answer(monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_ROWS", 3)
    down, asked = {1, 4, 5, 9}, []

    def answer(question: str) -> str:
        asked.append(question)
        if int(question.removeprefix("Where is lamp ").removesuffix("?")) in down:
            raise RuntimeError("down")
        return f"{question} Aisle 1."

    kwargs = dict(model=answer, data=data(), targets="ground_truth", cache="off", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = ek.evaluate(**kwargs)
    table = first.tables["eval_results_table"]
    assert [i for i, status in enumerate(table["status"]) if status != "ok"] == sorted(down)
    down.clear()
    asked.clear()
    resumed = ek.evaluate(**kwargs, resume=first.run_id)
    assert sorted(asked) == sorted(f"Where is lamp {i}?" for i in (1, 4, 5, 9))
    table = resumed.tables["eval_results_table"]
    assert resumed.run_id == first.run_id and set(table["status"]) == {"ok"} and list(table["row"]) == list(range(ROWS))
    assert list(table["outputs"]) == [f"Where is lamp {i}? Aisle 1." for i in range(ROWS)]
    assert resumed.metrics["rows/total"] == ROWS and resumed.metrics["error_count"] == 0


def test_the_dataset_digest_is_that_of_the_whole_data_as_one_json_text(monkeypatch):
    monkeypatch.setattr("evalkit.evaluation.data._DIGEST_CHUNK", 2)
    dataset = load_dataset(data(7), targets="ground_truth")
    whole = {"inputs": dataset.inputs(), "contexts": dataset.contexts(), "targets": dataset.targets()}
    encoded = json.dumps(whole, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert dataset.digest == hashlib.sha256(encoded.encode()).hexdigest()[:16]
    none = json.dumps({"inputs": ["é"], "contexts": [[]], "targets": None}, ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True)
    assert _digest(["é"], ((),), None) == hashlib.sha256(none.encode()).hexdigest()[:16]


def priority(record: dict) -> tuple[int, float]:
    """The report's rule for the rows a capped report keeps, row by row: failed ones first, then
    changed ones, each lowest score first."""
    failing = record["status"] != "ok" or "failed" in record["score_status"].values()
    worst = min((v for v in record["scores"].values() if v is not None), default=1.0)
    return (0 if failing else 1 if record.get("changed") else 2, worst)


def test_a_capped_report_embeds_the_rows_the_whole_table_would_pick(monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_ROWS", 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ek.evaluate(data=data(23), targets="ground_truth", predictions="prediction",
                             extra_metrics=["sometimes_raw"], progress=False)
    client = ek.TrackingClient()
    report = build_report(client, result.run_id, row_cap=6)
    full = load_run(client, result.run_id)
    records = row_records(full, range(len(full.table)))
    expected = sorted(sorted(records, key=priority)[:6], key=lambda r: r["row"])
    assert report.rows == expected and report.total_rows == 23 and "embeds 6 of 23 rows" in report.row_cap_note
    assert {5, 8} <= {r["row"] for r in report.rows}  # the empty answer and the failed score come first
    assert build_report(client, result.run_id).rows == records  # under the cap: every row, as before


def whole_table_report(client: ek.TrackingClient, run_id: str, baseline_id: str, row_cap: int) -> tuple[list, list, list]:
    """A report's rows, regressed and improved rows against a baseline, worked out row by row on
    both whole tables: the rule the report follows on columns."""
    current, baseline = load_run(client, run_id), load_run(client, baseline_id)
    records = row_records(current, range(len(current.table)))
    before_rows = row_records(baseline, range(len(baseline.table)))
    first = {}
    for j, key in enumerate(str(x) for x in baseline.table["inputs"]):
        first.setdefault(key, j)
    names = [info.name for info in score_evaluators(current)]
    directions = {info.name: info.higher_is_better for info in current.evaluators}
    for i, record in enumerate(records):
        j = first.get(str(current.table["inputs"][i]))
        if j is None:
            continue
        before = before_rows[j]
        record["baseline"] = {"output": before["output"], "scores": before["scores"], "status": before["status"]}
        record["changed"] = record["output"] != before["output"] or any(
            record["scores"].get(n) != before["scores"].get(n) for n in names)
        if record["changed"]:
            record["diff"] = diff_segments(before["output"] or "", record["output"] or "")
        deltas = [(record["scores"][n] - before["scores"][n]) * (1 if directions[n] else -1) for n in names
                  if record["scores"].get(n) is not None and before["scores"].get(n) is not None]
        record["delta"] = sum(deltas) / len(deltas) if deltas else 0.0
    ranked = sorted((r for r in records if r.get("changed")), key=lambda r: r["delta"])
    regressed = [r for r in ranked if r["delta"] <= -0.001][:20]
    improved = [r for r in reversed(ranked) if r["delta"] >= 0.001][:20]
    kept = sorted(sorted(records, key=priority)[:row_cap], key=lambda r: r["row"])
    return kept, regressed, improved


@pytest.mark.parametrize("same_data", [True, False])
def test_a_report_against_a_baseline_reads_only_the_rows_it_embeds_and_picks_them_as_the_whole_tables_would(
        monkeypatch, same_data):
    monkeypatch.setattr(engine, "CHUNK_ROWS", 4)
    monkeypatch.setattr(results, "ROW_GROUP_ROWS", 4)
    before = data(23)
    now = before.copy()
    now["prediction"] = [f"Lamp {i} is in aisle {i % 4}." if i % 3 == 0 else ("Lamp" if i % 5 == 0 else p)
                         for i, p in enumerate(before["prediction"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = ek.evaluate(data=before if same_data else before.iloc[3:], targets="ground_truth",
                           predictions="prediction", progress=False, report=False)
        result = ek.evaluate(data=now, targets="ground_truth", predictions="prediction", progress=False, report=False)
    client = ek.TrackingClient()
    read: list[int] = []
    records_at = RunView.records_at
    monkeypatch.setattr(RunView, "records_at", lambda view, at: read.extend(at) or records_at(view, at))
    for cap in (6, 2000):
        read.clear()
        report = build_report(client, result.run_id, baseline_run_id=base.run_id, row_cap=cap)
        read_by_report = len(read)
        kept, regressed, improved = whole_table_report(client, result.run_id, base.run_id, cap)
        assert report.rows == kept and report.changes == {"regressed": regressed, "improved": improved}
        assert regressed and improved and (report.digest_warning is None) == same_data
        shown = {r["row"] for r in [*kept, *regressed, *improved]}
        if cap == 6:  # the capped report read its rows and their partners, not every row of both runs
            assert len(kept) == 6 and len(shown) < 23 and read_by_report < 2 * 23
