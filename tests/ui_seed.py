"""A small tracking store for the UI's tests: evaluation runs (with results tables and reports), a
sweep of plain runs with metric histories, suite nights with gates, a RUNNING evaluation, a model
registry (RAGBot: three llm bundles with stages, aliases, an evidence rule and its history), and
names, params, tags, outputs, artifact names and a registered model that carry XSS payloads.

It is seeded into the session's shared tracking server (tests/ui_fixtures.py), beside other tests'
data: its experiments, suites and models have names of their own (``ui-``), and the UI's tests
find them through ``Seeded`` rather than by assuming they are alone."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import evalkit as ek
from evalkit.entities import Metric, Param, RunTag
from evalkit.suite import tags as suite_tags
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.registry import BUNDLE_HASH_PARAM
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
PREFIX = "ui-"  # the seeded experiments', suites' and models' names: other tests share the store


@dataclass
class Seeded:
    uri: str
    artifact_root: str
    experiments: dict[str, str] = field(default_factory=dict)  # role (rag-eval, sweep, registry, XSS[0]) -> id
    eval_runs: list[str] = field(default_factory=list)  # baseline, candidate
    sweep_runs: list[str] = field(default_factory=list)
    xss_run: str = ""
    running_run: str = ""
    nights: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)
    suite: str = PREFIX + "nightly"
    model: str = PREFIX + "RAGBot"
    model_runs: list[str] = field(default_factory=list)  # the source run of each RAGBot version
    evidence_runs: list[str] = field(default_factory=list)  # suite runs that passed on RAGBot v2 and v3
    xss_model: str = XSS[0]  # registered model names hold no "/" or "@"


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


def experiment_name(role: str) -> str:
    """The name of the seeded experiment ``role`` (rag-eval, sweep, registry) in the shared store."""
    return PREFIX + role


def seed(uri: str, root: str) -> Seeded:
    """Add the UI's data to the SQL store at ``uri`` (its artifacts under ``root``) and return what
    it added. Run once per store: its names are fixed."""
    before = os.environ.get("EVALKIT_ARTIFACT_ROOT")
    os.environ["EVALKIT_ARTIFACT_ROOT"] = root
    ek.set_tracking_uri(uri)
    seeded = Seeded(uri, root)
    try:
        client = TrackingClient()
        rag = client.create_experiment(experiment_name("rag-eval"))
        seeded.experiments["rag-eval"] = rag
        ek.set_experiment(experiment_id=rag)
        for version, name in ((0, "baseline-eval"), (1, "candidate-eval")):
            result = ek.evaluate(model=_model(version), data=rag_rows(), targets="ground_truth",
                                 evaluators=["exact_match", "token_f1"], progress=False, run_name=name)
            seeded.eval_runs.append(result.run_id)
        sweep = client.create_experiment(experiment_name("sweep"))
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
        _registry(client, seeded)
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
    """Three nights of the suite ``seeded.suite`` over two models; model-b's snapshot changes on night 3."""
    for night in range(3):
        start = 1_710_000_000_000 + night * 86_400_000
        status = "failed" if night == 2 else "passed"
        parent = client.create_run(experiment, run_name=f"nightly-{night}", start_time=start, tags={
            suite_tags.SUITE: seeded.suite, suite_tags.ROLE: "parent", suite_tags.STATUS: status})
        seeded.nights.append(parent.info.run_id)
        for m, model in enumerate(("model-a", "model-b")):
            snapshot = "b-2024-06" if model == "model-b" and night == 2 else f"{model}-2024-01"
            value = 0.8 + 0.05 * night * (1 if m == 0 else -1)
            gate_status = "failed" if night == 2 and m == 1 else "passed"
            pair = client.create_run(experiment, run_name=f"nightly-{night}-{model}", parent_run_id=parent.info.run_id,
                                     start_time=start + 1000 + m, tags={
                                         suite_tags.SUITE: seeded.suite, suite_tags.ROLE: "pair",
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


EVIDENCE_SUITE = PREFIX + "release-gate"


def evidence_run(client: TrackingClient, experiment: str, bundle_hash: str, passed: bool = True) -> str:
    """A FINISHED run of the nightly job (a suite run and its one pair) that evaluated the bundle
    ``bundle_hash``; its gates passed unless ``passed`` is False. Returns the suite run's id."""
    status = "passed" if passed else "failed"
    parent = client.create_run(experiment, run_name=f"gate-{bundle_hash[:8]}", tags={
        suite_tags.SUITE: EVIDENCE_SUITE, suite_tags.ROLE: "parent", suite_tags.STATUS: status})
    pair = client.create_run(experiment, run_name=f"gate-{bundle_hash[:8]}-pair", parent_run_id=parent.info.run_id, tags={
        suite_tags.SUITE: EVIDENCE_SUITE, suite_tags.ROLE: "pair", suite_tags.STATUS: status,
        suite_tags.DATASET: "rag_qa", suite_tags.MODEL: "candidate"})
    client.log_batch(pair.info.run_id, params=[Param(BUNDLE_HASH_PARAM, bundle_hash)])
    client.set_terminated(pair.info.run_id)
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


def _registry(client: TrackingClient, seeded: Seeded) -> None:
    """RAGBot: v1 went to Production before the evidence rule; v2 reached Production (archiving v1)
    and @champion with evidence; v3 is new with @canary. And a model whose strings are XSS payloads."""
    experiment = client.create_experiment(experiment_name("registry"))
    seeded.experiments["registry"] = experiment
    ek.set_experiment(experiment_id=experiment)
    versions = []
    for top_k in (3, 5, 8):
        with ek.start_run(run_name=f"ragbot-top{top_k}") as run:
            info = ek.log_model("openai:/gpt-4o-mini", prompt=[
                {"role": "system", "content": "Answer from the passages."},
                {"role": "user", "content": "{{ context }}\n\nQuestion: {{ input }}"}],
                inference_params={"temperature": 0}, retrieval={"top_k": top_k})
        seeded.model_runs.append(run.info.run_id)
        versions.append(ek.register_model(info.model_uri, seeded.model, tags={"top_k": str(top_k)}))
    client.update_registered_model(seeded.model, description="The support bot: retrieval plus gpt-4o-mini")
    client.set_registered_model_tag(seeded.model, "team", "nlp")
    client.update_model_version(seeded.model, 2, description="top_k 5")
    client.transition_model_version_stage(seeded.model, 1, "Staging")
    client.transition_model_version_stage(seeded.model, 1, "Production")
    client.set_registered_model_alias(seeded.model, "champion", 1)
    client.update_registered_model(seeded.model, evidence_required=["Production", "@champion"])
    seeded.evidence_runs = [evidence_run(client, experiment, v.bundle_hash) for v in versions[1:]]
    client.transition_model_version_stage(seeded.model, 2, "Staging")
    client.transition_model_version_stage(seeded.model, 2, "Production", archive_existing_versions=True,
                                          evidence_run_id=seeded.evidence_runs[0])
    client.set_registered_model_alias(seeded.model, "champion", 2, evidence_run_id=seeded.evidence_runs[0])
    client.set_registered_model_alias(seeded.model, "canary", 3)
    client.create_registered_model(seeded.xss_model, tags={"note": XSS[3]}, description=XSS[1])
    client.create_model_version(seeded.xss_model, f"runs:/{seeded.model_runs[0]}/model", run_id=seeded.model_runs[0],
                                tags={"why": XSS[2]}, description=XSS[1])


def own_model(client: TrackingClient, experiment: str, prefix: str, versions: int = 2,
              evidence_required: list[str] | None = None) -> tuple[str, list[str]]:
    """A model of the calling test's own (a unique name), with ``versions`` versions registered
    from one run of ``experiment`` (hashes made up: the store does not read bundles), so a test
    that moves stages disturbs no other. Returns the name and each version's bundle hash."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run = client.create_run(experiment, run_name=name)
    client.create_registered_model(name, evidence_required=evidence_required)
    hashes = [hashlib.sha256(f"{name}/{i}".encode()).hexdigest() for i in range(versions)]
    for bundle_hash in hashes:
        client.store.create_model_version(name, f"runs:/{run.info.run_id}/model", bundle_hash, "llm", run.info.run_id)
    client.set_terminated(run.info.run_id)
    return name, hashes
