"""A small tracking store for the UI's tests: evaluation runs (with results tables and reports), a
sweep of plain runs with metric histories, suite nights with gates, a RUNNING evaluation, and
names, params, tags, outputs and artifact names that carry XSS payloads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import evalkit as ek
from evalkit.entities import Metric, Param, RunTag
from evalkit.suite import tags as suite_tags
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.stores import close_stores

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "rag_qa.jsonl"
# Each payload calls a function the tests plant on window: if anything runs, the test sees it.
XSS = [
    '<img src=x onerror="window.__xss(1)">',
    '<script>window.__xss(2)</script>',
    '"><svg onload="window.__xss(3)">',
    "'><iframe srcdoc=\"<script>parent.__xss(4)</script>\">",
    "javascript:window.__xss(5)",
]
SWEEP_RUNS = 60


@dataclass
class Seeded:
    uri: str
    artifact_root: str
    experiments: dict[str, str] = field(default_factory=dict)  # name -> id
    eval_runs: list[str] = field(default_factory=list)  # baseline, candidate
    sweep_runs: list[str] = field(default_factory=list)
    xss_run: str = ""
    running_run: str = ""
    nights: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)


def rag_rows(count: int = 30) -> pd.DataFrame:
    records = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    return pd.DataFrame(records[:count])[["id", "question", "contexts", "ground_truth"]]


def _model(version: int):
    def answer(question: str, row: dict[str, Any]) -> str:
        i = int(row["id"][1:]) - 1
        if i % 10 == 7:
            raise RuntimeError(f"backend exploded on {row['id']}")
        if i == 4:
            return XSS[0] + " " + XSS[1]
        if (i + version) % 3 == 0:
            return "I don't know"
        return row["ground_truth"] if (i + version) % 3 == 1 else f"{row['ground_truth']}, probably"
    return answer


def seed(folder: Path) -> Seeded:
    """Fill a SQLite store under ``folder`` and return what is in it."""
    uri = str(folder / "ui.db")
    root = str(folder / "artifacts")
    before = os.environ.get("EVALKIT_ARTIFACT_ROOT")
    os.environ["EVALKIT_ARTIFACT_ROOT"] = root
    ek.set_tracking_uri(uri)
    seeded = Seeded(uri, root)
    try:
        client = TrackingClient()
        rag = client.create_experiment("rag-eval")
        seeded.experiments["rag-eval"] = rag
        ek.set_experiment(experiment_id=rag)
        for version, name in ((0, "baseline-eval"), (1, "candidate-eval")):
            result = ek.evaluate(model=_model(version), data=rag_rows(), targets="ground_truth",
                                 evaluators=["exact_match", "token_f1"], progress=False, run_name=name)
            seeded.eval_runs.append(result.run_id)
        sweep = client.create_experiment("sweep")
        seeded.experiments["sweep"] = sweep
        for i in range(SWEEP_RUNS):
            run = client.create_run(sweep, run_name=f"sweep-{i:03d}", start_time=1_700_000_000_000 + i * 60_000)
            history = [Metric("loss", 1.0 / (step + 1 + i % 7), 1_700_000_000_000 + step, step) for step in range(40)]
            client.log_batch(run.info.run_id, metrics=[Metric("accuracy", (i * 37 % 100) / 100, 0, 0), *history],
                             params=[Param("lr", str([0.1, 0.01, 0.001][i % 3])), Param("batch", str(16 * (1 + i % 4)))],
                             tags=[RunTag("team", "rag" if i % 2 else "search")])
            client.set_terminated(run.info.run_id, end_time=1_700_000_000_000 + i * 60_000 + 5_000 + i * 10)
            seeded.sweep_runs.append(run.info.run_id)
        evil = client.create_experiment(XSS[0])
        seeded.experiments[XSS[0]] = evil
        run = client.create_run(evil, run_name=XSS[1], tags={"note": XSS[3]})
        client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 0, 0)], params=[Param("p", XSS[2]), Param("q", XSS[4])])
        client.log_text(run.info.run_id, XSS[1], "notes.txt")
        client.log_text(run.info.run_id, "<b>bold</b>", "evil <img src=x onerror=window.__xss(6)>.txt")
        client.log_text(run.info.run_id, "<script>window.__xss(7)</script>", "page.html")
        client.log_dict(run.info.run_id, {"html": XSS[1]}, "data.json")
        client.log_table(run.info.run_id, pd.DataFrame({"text": XSS, "n": range(len(XSS))}), "table.parquet")
        client.set_terminated(run.info.run_id)
        seeded.xss_run = run.info.run_id
        _suite(client, rag, seeded)
        running = client.create_run(rag, run_name="live-eval")
        client.log_batch(running.info.run_id, params=[Param("dataset_rows", "10")])
        outcomes = [{"index": i, "status": "failed" if i == 2 else "ok", "cost_usd": 0.001, "cached": False}
                    for i in range(4)]
        client.log_text(running.info.run_id, "".join(json.dumps(o) + "\n" for o in outcomes), "journal/rows.jsonl")
        seeded.running_run = running.info.run_id
        client.flush()
    finally:
        ek.set_tracking_uri(None)
        close_stores()
        if before is None:
            os.environ.pop("EVALKIT_ARTIFACT_ROOT", None)
        else:
            os.environ["EVALKIT_ARTIFACT_ROOT"] = before
    return seeded


def _suite(client: TrackingClient, experiment: str, seeded: Seeded) -> None:
    """Three nights of suite "nightly" over two models; the second model's snapshot changes on night 3."""
    for night in range(3):
        start = 1_710_000_000_000 + night * 86_400_000
        status = "failed" if night == 2 else "passed"
        parent = client.create_run(experiment, run_name=f"nightly-{night}", start_time=start, tags={
            suite_tags.SUITE: "nightly", suite_tags.ROLE: "parent", suite_tags.STATUS: status})
        seeded.nights.append(parent.info.run_id)
        for m, model in enumerate(("model-a", "model-b")):
            snapshot = "b-2024-06" if model == "model-b" and night == 2 else f"{model}-2024-01"
            value = 0.8 + 0.05 * night * (1 if m == 0 else -1)
            gate_status = "failed" if night == 2 and m == 1 else "passed"
            pair = client.create_run(experiment, run_name=f"nightly-{night}-{model}", parent_run_id=parent.info.run_id,
                                     start_time=start + 1000 + m, tags={
                                         suite_tags.SUITE: "nightly", suite_tags.ROLE: "pair",
                                         suite_tags.STATUS: gate_status, suite_tags.DATASET: "rag_qa",
                                         suite_tags.MODEL: model, suite_tags.MODEL_SNAPSHOT: snapshot})
            client.log_batch(pair.info.run_id, metrics=[Metric("token_f1/v1/mean", value, start, 0)])
            client.log_dict(pair.info.run_id, {"status": gate_status, "error": None, "gates": [
                {"name": "f1-floor", "kind": "threshold", "metric": "token_f1/v1/mean", "status": gate_status,
                 "observed": value, "baseline": None, "message": f"token_f1 mean {value:.3f} vs floor 0.78"}]},
                suite_tags.GATES_FILE)
            client.set_terminated(pair.info.run_id, end_time=start + 60_000)
            seeded.pairs.append(pair.info.run_id)
        client.set_terminated(parent.info.run_id, end_time=start + 120_000)
