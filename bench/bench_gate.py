"""Does the nightly gate cry wolf, and does it catch a real drop? A/A and regression trials of the
paired baseline gate, through the real pipeline: ``evalkit.evaluate`` with a judge, both the model
and the judge answered over HTTP by the fake OpenAI server (in its own process), runs logged to a
temporary tracking store, then the gate code of the nightly job (``evalkit.suite.gates.compare`` and
``decide_paired`` on ``RunScores`` loaded back from the store, alpha 0.025 one-sided, Holm).

The issue's requirement: an A/A test passes at least 95% of the time; a real drop of 5 points on
500 rows fails at least 90% of the time.

Scenario design
---------------
Data (``make_rows``, deterministic from ``--seed``): RAG rows about made-up ferries. The question
asks where ferry X was built and when it was launched; three passages give the yard, the launch
(and the passenger count) and, as a distractor, the yard and launch year of its sister ship; the
ground truth is two statements ("X was built in Porto. X was launched in 1994.").

Model (fake, answered by ``GateResponder`` from a per-row table, so it is deterministic): on each
row the baseline model gives both facts (60% of rows), both facts and an extra true one (20%),
only the yard (12%), or a yard that no passage names (8%). The same rows get the same answers in
every run: all run-to-run variation comes from the judge.

Noisy judge: ``evalkit.testing.fake_judge.judge_responder`` decides, then every faithfulness
verdict (supported <-> unsupported) and every answer statement's class (TP <-> FP) is flipped
with probability ``eps``. The flips come from an RNG seeded by the run's noise seed (sent as the
judge's ``seed`` parameter, a fresh one per run) and the request's messages, so two runs get
independent noise, and a run's noise does not depend on the order concurrent requests arrive in.

Gated metric: answer_correctness (judge-v1: 0.75 x statement F1 against the ground truth + 0.25 x
embedding similarity). It is the metric whose per-row score reacts to a wrong answer: it compares
the answer with the ground truth. faithfulness only asks whether the answer is grounded in the
retrieved passages, and the regression below is a model that copies the wrong passage (the sister
ship's facts): grounded, so faithful, but wrong. The table shows faithfulness not moving.

"5 points": the candidate model is the baseline model except on a set W of rows, where it answers
with the sister ship's yard and year (TP 0, FP 2, FN 2 for the judge). W is chosen so that the
expected answer_correctness mean, under the judge noise of that eps, drops by 0.05 (absolute, on
the metric's 0..1 scale): a calibration pass (eps 0, the baseline model and an always-wrong model)
reads every row's TP/FP/FN and similarity from the real pipeline, the expected score of each
row's right and wrong answer under eps-flips is computed exactly, and rows are added to W in a
seeded random order until the summed expected drops reach 0.05 x rows. The realised drop (mean
over trials of baseline mean - candidate mean) is printed next to it.

Trials: each trial makes three fresh runs with fresh noise seeds: baseline B, A/A candidate A (the
same model) and regression candidate C (the degraded model). A/A gates A against B, regression C
against B (the two scenarios share the trial's baseline run). Two gate configurations are applied
to the same runs: answer_correctness alone, and faithfulness + answer_correctness together (two
paired gates, Holm-adjusted, the family fails when either gate fails).

Prints a Markdown table: per eps and configuration, the A/A pass rate and the regression
detection rate with 95% Wilson intervals, trials, rows, the expected and realised drops, and wall
time. Every trial costs three 500-row evaluations (5 requests per row: the answer, two statement
splits, the verdicts, the TP/FP/FN sorting; 7,500 requests a trial), 5.5-7 s on 2 cores; the
default of 25 trials per eps for 3 eps runs in about 8 minutes. 200 trials per eps would take an
hour: for tighter intervals run one eps with more trials (``--eps 0.1 --trials 100``).

Run: ``.venv/bin/python bench/bench_gate.py [--trials 25] [--rows 500] [--eps 0.05 0.1 0.2] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import messages_hash

HERE = Path(__file__).resolve().parent
MODEL = "gpt-4o-mini"  # the baseline model, and the A/A candidate
DEGRADED = "gpt-4o-mini-degraded"  # the regression candidate: wrong on the rows of GateSpec.wrong
ALL_WRONG = "gpt-4o-mini-all-wrong"  # wrong on every row; only for the calibration
JUDGE = "gpt-4o-mini"
CORRECTNESS = "answer_correctness/judge-v1/mean"
FAITHFULNESS = "faithfulness/judge-v1/mean"
CONFIGURATIONS = {"answer_correctness": [CORRECTNESS], "faithfulness + answer_correctness, Holm": [FAITHFULNESS, CORRECTNESS]}
ALPHA = 0.025  # the suite's default (evalkit.suite.config.BaselineSpec.alpha)
DROP = 0.05  # the regression to detect, in answer_correctness points (0..1 scale)
SPEC_ENV = "EVALKIT_BENCH_GATE_SPEC"  # the server process reads its GateSpec from this JSON file

_NAMES = ["Marlin", "Tarpon", "Heron", "Puffin", "Osprey", "Kestrel", "Plover", "Curlew", "Gannet", "Tern"]
_YARDS = ["Porto", "Ghent", "Bergen", "Gdansk", "Split", "Cork", "Malmo", "Tallinn", "Bilbao", "Genoa"]
_UNNAMED_YARDS = ["Oslo", "Riga", "Brest", "Hull", "Vigo"]  # never in a passage: a hallucinated yard
_BASELINE_KINDS = [("both", 0.60), ("both+extra", 0.20), ("yard only", 0.12), ("hallucinated yard", 0.08)]


# ---- data and the fake model's answers -------------------------------------------------------


@dataclass(frozen=True)
class Row:
    question: str
    contexts: list[str]
    ground_truth: str
    answer: str  # the baseline model's answer
    wrong_answer: str  # the degraded model's answer: the sister ship's facts
    kind: str  # which of _BASELINE_KINDS the baseline answer is


def make_rows(count: int, seed: int = 0) -> list[Row]:
    """``count`` RAG rows, the same for the same seed (see the module doc)."""
    rng = random.Random(seed)
    kinds, weights = zip(*_BASELINE_KINDS, strict=True)
    return [_make_row(i, rng, rng.choices(kinds, weights)[0]) for i in range(count)]


def _make_row(i: int, rng: random.Random, kind: str) -> Row:
    name = f"{rng.choice(_NAMES)}-{i}"
    sister = f"{rng.choice(_NAMES)}-{i + 5000}"
    yard, sister_yard = rng.sample(_YARDS, 2)
    year, sister_year = rng.sample(range(1961, 2021), 2)
    passengers = rng.randrange(120, 900, 10)
    contexts = [f"The ferry {name} was built in {yard} by a family-owned yard.",
                f"{name} was launched in {year} and carries {passengers} passengers.",
                f"Its sister ship {sister} was built in {sister_yard} and launched in {sister_year}."]
    rng.shuffle(contexts)
    both = f"{name} was built in {yard}. It was launched in {year}."
    answer = {"both": both,
              "both+extra": f"{both} {name} carries {passengers} passengers.",
              "yard only": f"{name} was built in {yard}.",
              "hallucinated yard": f"{name} was built in {rng.choice(_UNNAMED_YARDS)}. It was launched in {year}."}[kind]
    return Row(question=f"Where was the ferry {name} built, and in which year was it launched?", contexts=contexts,
               ground_truth=f"{name} was built in {yard}. {name} was launched in {year}.", answer=answer,
               wrong_answer=f"{name} was built in {sister_yard}. {name} was launched in {sister_year}.", kind=kind)


def frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The evaluation data: what evaluate() sees (the answers stay with the fake model)."""
    return pd.DataFrame({"inputs": [r.question for r in rows], "contexts": [r.contexts for r in rows],
                         "ground_truth": [r.ground_truth for r in rows]})


# ---- the fake server's responder: the model and the noisy judge ------------------------------


@dataclass
class GateSpec:
    """What the server answers with: the rows (regenerated from ``seed``), the judge's flip
    probability and the row positions the degraded model gets wrong."""

    rows: int
    seed: int = 0
    eps: float = 0.0
    wrong: list[int] = field(default_factory=list)


_JUDGE_PROMPTS = ("atomic claims", "check claims against source passages", "compare an answer with a reference answer")
_QUESTION = re.compile(r"^Question: (.*)$", re.MULTILINE)


class GateResponder:
    """Answers model requests from the rows' answer table and judge requests with a noisy
    ``judge_responder`` (see the module doc)."""

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        rows = make_rows(spec.rows, spec.seed)
        self.by_question = {row.question: (i, row) for i, row in enumerate(rows)}
        self.wrong = set(spec.wrong)

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        if any(phrase in system for phrase in _JUDGE_PROMPTS):
            return self._judge(body)
        return self._model(body["model"], messages[-1]["content"])

    def _model(self, model: str, prompt: str) -> str:
        match = _QUESTION.search(prompt)
        if match is None or match.group(1).strip() not in self.by_question:
            raise ValueError(f"not a question of this data set: {prompt[-200:]!r}")
        position, row = self.by_question[match.group(1).strip()]
        wrong = model == ALL_WRONG or (model == DEGRADED and position in self.wrong)
        return row.wrong_answer if wrong else row.answer

    def _judge(self, body: dict[str, Any]) -> str:
        reply = json.loads(judge_responder(body))
        if not self.spec.eps:
            return json.dumps(reply)
        rng = random.Random(f"{body.get('seed')}|{messages_hash(body['messages'])}")
        if "verdicts" in reply:
            for item in reply["verdicts"]:
                if rng.random() < self.spec.eps:
                    item["verdict"] = 1 - item["verdict"]
        elif "TP" in reply:
            kept = [(item, "TP") for item in reply["TP"]] + [(item, "FP") for item in reply["FP"]]
            flipped = [(item, {"TP": "FP", "FP": "TP"}[cls] if rng.random() < self.spec.eps else cls)
                       for item, cls in kept]
            reply["TP"] = [item for item, cls in flipped if cls == "TP"]
            reply["FP"] = [item for item, cls in flipped if cls == "FP"]
        return json.dumps(reply)


_SERVER_RESPONDER: GateResponder | None = None


def responder(body: dict[str, Any]) -> str:
    """The server process's responder (``--responder bench_gate:responder``), built on first use
    from the GateSpec in the JSON file named by $EVALKIT_BENCH_GATE_SPEC."""
    global _SERVER_RESPONDER
    if _SERVER_RESPONDER is None:
        _SERVER_RESPONDER = GateResponder(GateSpec(**json.loads(Path(os.environ[SPEC_ENV]).read_text())))
    return _SERVER_RESPONDER(body)


# ---- runs and gates --------------------------------------------------------------------------


def evaluate_run(base_url: str, data: pd.DataFrame, model: str, noise_seed: int, concurrency: int = 16) -> str:
    """One judged evaluation through the fake server; returns its run id."""
    import evalkit as ek

    result = ek.evaluate(model=f"openai:/{model}?base_url={base_url}", data=data, targets="ground_truth",
                         judge=f"openai:/{JUDGE}?base_url={base_url}", judge_params={"seed": noise_seed},
                         evaluators=["faithfulness", "answer_correctness"], cache="off", report=False,
                         progress=False, concurrency=concurrency)
    if result.metrics.get("rows/answered") != len(data):
        raise RuntimeError(f"run {result.run_id} did not answer every row: {result.metrics}")
    return result.run_id


def load_scores(run_id: str) -> Any:
    """The run's metrics and whole results table, as the gates read them. The nightly job
    (``evalkit.suite.job._scores``) holds the table without its texts, with the same gates
    (tests/suite/test_gates_read_light_tables.py)."""
    from evalkit.evaluation.engine import RESULTS_TABLE
    from evalkit.evaluation.run_evaluators import load_evaluators
    from evalkit.suite.gates import RunScores
    from evalkit.tracking.client import TrackingClient

    client = TrackingClient()
    run = client.get_run(run_id)
    table = client.load_table(run_id, f"{RESULTS_TABLE}.parquet")
    return RunScores(run_id, run.data.metrics, table, run.data.params.get("dataset_digest"), load_evaluators(client, run))


def gate(current: Any, baseline: Any, metrics: Sequence[str], alpha: float = ALPHA) -> list[Any]:
    """The paired gates of ``metrics`` (current vs baseline), decided together with Holm, as
    the nightly job does; returns the GateResults."""
    from evalkit.suite.gates import ERROR, Comparison, compare, decide_paired

    rules = {rule.name: rule for rule in (Comparison(metric, "paired") for metric in metrics)}
    gates = [compare(rule, current, baseline) for rule in rules.values()]
    if errors := [g for g in gates if g.status == ERROR]:
        raise RuntimeError(f"a gate could not be judged: {errors[0].message}")
    decide_paired(gates, rules, alpha, "holm")
    return gates


def failed(gates: Sequence[Any]) -> bool:
    from evalkit.suite.gates import FAILED

    return any(g.status == FAILED for g in gates)


# ---- calibration: which rows the degraded model gets wrong -----------------------------------

_COUNTS = re.compile(r"TP (\d+), FP (\d+), FN (\d+), F1 [\d.]+; similarity ([\d.]+)")


def expected_f1(tp: int, fp: int, fn: int, eps: float) -> float:
    """The mean statement F1 when each answer statement's TP/FP class flips with probability eps."""
    from evalkit.evaluators.answer_correctness import f1_from_counts

    total = 0.0
    for kept in range(tp + 1):
        for gained in range(fp + 1):
            chance = (math.comb(tp, kept) * (1 - eps) ** kept * eps ** (tp - kept)
                      * math.comb(fp, gained) * eps ** gained * (1 - eps) ** (fp - gained))
            total += chance * f1_from_counts(kept + gained, tp + fp - kept - gained, fn)
    return total


def row_parts(run_id: str) -> list[tuple[int, int, int, float]]:
    """Every row's (TP, FP, FN, similarity) from a noiseless run's answer_correctness column."""
    table = load_scores(run_id).table
    parts = []
    for justification in table["answer_correctness/justification"]:
        match = _COUNTS.search(str(justification))
        if match is None:
            raise RuntimeError(f"cannot read TP/FP/FN from {justification!r}")
        tp, fp, fn, similarity = match.groups()
        parts.append((int(tp), int(fp), int(fn), float(similarity)))
    return parts


def expected_scores(parts: Sequence[tuple[int, int, int, float]], eps: float) -> np.ndarray:
    """Each row's expected answer_correctness under the noisy judge."""
    from evalkit.evaluators.answer_correctness import JudgedAnswerCorrectness

    w_f1, w_similarity = JudgedAnswerCorrectness().weights
    return np.array([w_f1 * expected_f1(tp, fp, fn, eps) + w_similarity * sim for tp, fp, fn, sim in parts])


def choose_wrong_rows(right: np.ndarray, wrong: np.ndarray, drop: float, seed: int) -> tuple[list[int], float]:
    """Rows, in a seeded random order, until their expected drops sum to ``drop`` x rows (the
    closest cut); returns them and the expected drop of the mean they give."""
    order = np.random.default_rng(seed).permutation(len(right))
    cumulative = np.cumsum((right - wrong)[order])
    cut = int(np.argmin(np.abs(cumulative - drop * len(right)))) + 1
    return sorted(int(i) for i in order[:cut]), float(cumulative[cut - 1] / len(right))


# ---- trials ----------------------------------------------------------------------------------


@dataclass
class Trial:
    seconds: float
    means: dict[str, dict[str, float]]  # run ("B", "A", "C") -> metric -> mean
    aa_failed: dict[str, bool]  # configuration -> the gate failed on the A/A pair
    regression_failed: dict[str, bool]
    p_values: dict[str, float]  # "A/A" and "regression" -> the answer_correctness gate's raw p


def run_trial(base_url: str, data: pd.DataFrame, seeds: Iterator[int], concurrency: int) -> Trial:
    started = time.perf_counter()
    runs = {"B": evaluate_run(base_url, data, MODEL, next(seeds), concurrency),
            "A": evaluate_run(base_url, data, MODEL, next(seeds), concurrency),
            "C": evaluate_run(base_url, data, DEGRADED, next(seeds), concurrency)}
    scores = {name: load_scores(run_id) for name, run_id in runs.items()}
    aa = {name: gate(scores["A"], scores["B"], metrics) for name, metrics in CONFIGURATIONS.items()}
    regression = {name: gate(scores["C"], scores["B"], metrics) for name, metrics in CONFIGURATIONS.items()}
    return Trial(
        seconds=time.perf_counter() - started,
        means={name: {m: s.metrics[m] for m in (CORRECTNESS, FAITHFULNESS)} for name, s in scores.items()},
        aa_failed={name: failed(g) for name, g in aa.items()},
        regression_failed={name: failed(g) for name, g in regression.items()},
        p_values={"A/A": aa["answer_correctness"][0].p_value, "regression": regression["answer_correctness"][0].p_value},
    )


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial proportion."""
    if trials == 0:
        return (0.0, 1.0)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(successes: int, trials: int) -> str:
    low, high = wilson(successes, trials)
    return f"{successes}/{trials} = {successes / trials:.3f} [{low:.3f}, {high:.3f}]"


# ---- the server and main ---------------------------------------------------------------------


def start_spec_server(spec: GateSpec, folder: Path) -> tuple[Any, str]:
    """The fake server, in its own process, answering with ``GateResponder(spec)``."""
    from bench_runner import start_server

    path = folder / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(asdict(spec)))
    os.environ[SPEC_ENV] = str(path)
    return start_server(0.0, ["--responder", "bench_gate:responder"])


def calibrate(rows: int, seed: int, folder: Path, concurrency: int) -> tuple[list, list]:
    """(TP, FP, FN, similarity) of every row's right answer and of its wrong answer, read from
    two noiseless runs of the real pipeline."""
    server, base_url = start_spec_server(GateSpec(rows, seed), folder)
    try:
        data = frame(make_rows(rows, seed))
        return (row_parts(evaluate_run(base_url, data, MODEL, 0, concurrency)),
                row_parts(evaluate_run(base_url, data, ALL_WRONG, 0, concurrency)))
    finally:
        server.terminate()
        server.wait()


@dataclass
class EpsResult:
    eps: float
    wrong_rows: int
    expected_drop: float
    trials: list[Trial]
    seconds: float
    requests: int  # served by the fake server: model and judge calls of every trial


def run_eps(eps: float, args: argparse.Namespace, calibration: tuple[list, list], folder: Path) -> EpsResult:
    from bench_runner import server_stats

    right, wrong = (expected_scores(parts, eps) for parts in calibration)
    wrong_rows, expected_drop = choose_wrong_rows(right, wrong, DROP, args.seed)
    data = frame(make_rows(args.rows, args.seed))
    seeds = iter(random.Random(f"{args.seed}|{eps}").sample(range(1, 2**31), 3 * args.trials))
    started = time.perf_counter()
    server, base_url = start_spec_server(GateSpec(args.rows, args.seed, eps, wrong_rows), folder)
    try:
        trials = []
        for number in range(args.trials):
            trials.append(run_trial(base_url, data, seeds, args.concurrency))
            if args.verbose:
                t = trials[-1]
                print(f"  eps {eps:g} trial {number + 1}: {t.seconds:.1f} s, p A/A {t.p_values['A/A']:.4f}, "
                      f"p regression {t.p_values['regression']:.4f}", flush=True)
        seconds = time.perf_counter() - started
        requests = server_stats(base_url)["requests"]
    finally:
        server.terminate()
        server.wait()
    return EpsResult(eps, len(wrong_rows), expected_drop, trials, seconds, requests)


def table_rows(result: EpsResult, rows: int) -> Iterator[str]:
    trials = result.trials
    drops = np.array([t.means["B"][CORRECTNESS] - t.means["C"][CORRECTNESS] for t in trials])
    aa_deltas = np.array([t.means["A"][CORRECTNESS] - t.means["B"][CORRECTNESS] for t in trials])
    faithfulness = np.array([t.means["B"][FAITHFULNESS] - t.means["C"][FAITHFULNESS] for t in trials])
    for name in CONFIGURATIONS:
        passes = sum(not t.aa_failed[name] for t in trials)
        detections = sum(t.regression_failed[name] for t in trials)
        yield (f"| {result.eps:g} | {name} | {rate(passes, len(trials))} | {rate(detections, len(trials))} | "
               f"{len(trials)} | {rows} | {result.wrong_rows} | {result.expected_drop:.4f} | "
               f"{drops.mean():.4f} ± {drops.std(ddof=1) if len(trials) > 1 else 0:.4f} | {faithfulness.mean():+.4f} | "
               f"{aa_deltas.mean():+.4f} ± {aa_deltas.std(ddof=1) if len(trials) > 1 else 0:.4f} | "
               f"{result.seconds:.0f} s ({result.seconds / len(trials):.1f} s/trial) |")


def print_table(results: Sequence[EpsResult], rows: int) -> None:
    print("| eps | paired gates | A/A pass rate [95% Wilson] | regression detection rate [95% Wilson] | trials | rows "
          "| wrong rows | expected drop | realised drop (mean ± sd) | faithfulness drop | A/A change (mean ± sd) "
          "| wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        for line in table_rows(result, rows):
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=25, help="trials per eps (3 evaluations of --rows each)")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.10, 0.20],
                        help="the judge's flip probabilities to measure")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the wrong rows and the noise seeds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--verbose", action="store_true", help="print every trial")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="evalkit-bench-gate-"))
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    # The server process imports this module (bench_gate:responder) and bench_runner from bench/.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    from evalkit.evaluators.embeddings import model as embedding_model

    import evalkit as ek

    ek.set_tracking_uri(f"sqlite:///{folder / 'bench.db'}")
    embedding_model()  # loaded once, outside the timings

    started = time.perf_counter()
    calibration = calibrate(args.rows, args.seed, folder, args.concurrency)
    print(f"calibration (2 noiseless runs of {args.rows} rows): {time.perf_counter() - started:.1f} s", flush=True)
    results = []
    for eps in args.eps:
        results.append(run_eps(eps, args, calibration, folder))
        done = results[-1]
        print(f"eps {eps:g}: {len(done.trials)} trials in {done.seconds:.0f} s ({done.seconds / len(done.trials):.1f} s "
              f"per trial), {done.requests} requests served over HTTP", flush=True)
    print()
    print(f"{args.rows} rows, {args.trials} trials per eps (each: 3 fresh evaluations), alpha {ALPHA} one-sided, "
          f"Holm across a configuration's paired gates, {os.cpu_count()} CPUs, total {time.perf_counter() - started:.0f} s")
    print()
    print_table(results, args.rows)
    print(f"\nruns and spec files kept in {folder}")


if __name__ == "__main__":
    main()
