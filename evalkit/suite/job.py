"""``run_suite``: the nightly job. Every (dataset, model) pair of a suite is evaluated as a child
run of one suite run, its gates are checked against thresholds and the baseline, and the job
leaves behind the HTML reports, a JUnit file and a Markdown summary.

The exit code tells a scheduler what happened: 0 every gate passed, 1 a gate failed (a
regression), 2 the job could not do its work (a bad suite file, an endpoint that is down, the
budget spent, a metric that could not be measured). An outage is never reported as a regression.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalkit.entities import Metric, RunStatus
from evalkit.errors import NotFound
from evalkit.evaluation.engine import (
    REPORT_FILE,
    EvaluationResult,
    execute,
    failure_text,
    log_report,
)
from evalkit.evaluation.plan import EvaluationPlan
from evalkit.evaluation.results import ResultsFile
from evalkit.evaluation.run_evaluators import load_evaluators
from evalkit.suite import tags
from evalkit.suite.baseline import Baseline, resolve_baseline
from evalkit.suite.config import Suite, load_suite, parse_tolerance
from evalkit.suite.gates import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    Comparison,
    GateResult,
    RunScores,
    check_threshold,
    compare,
    decide_paired,
)
from evalkit.suite.junit import write_junit
from evalkit.suite.preflight import Pair, preflight
from evalkit.suite.summary import write_summary
from evalkit.tracking import fluent
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.provenance import git_commit

EXIT_CODES = {PASSED: 0, FAILED: 1, ERROR: 2}


@dataclass
class PairResult:
    """One (dataset, model) pair: its child run, gates and report."""

    dataset: str
    model: str
    run_id: str | None = None
    status: str = PASSED
    gates: list[GateResult] = field(default_factory=list)
    error: str | None = None
    baseline_run_id: str | None = None
    report_path: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    unscored: dict[str, str] = field(default_factory=dict)  # evaluators that scored no row: why
    seconds: float = 0.0


@dataclass
class SuiteResult:
    """What ``run_suite`` returns; ``exit_code`` is what ``evalkit run`` exits with."""

    suite: str
    run_id: str
    status: str
    pairs: list[PairResult]
    baseline: Baseline | None
    out_dir: Path
    junit_path: Path
    summary_path: Path
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def run_suite(suite: Suite | str | Path, out_dir: str | Path = "evalkit-out", baseline: str | None = None,
              progress: bool | None = None) -> SuiteResult:
    """Run a suite file (see ``evalkit.suite.config``) and gate it; see the module doc.

    ``baseline`` overrides the suite's ``baseline.run`` ("last-passing" or a run id). Reports,
    ``junit.xml`` and ``summary.md`` are written under ``out_dir`` and logged with the runs.
    The suite file is checked whole before any model is called (SuiteConfigError).
    """
    started = time.monotonic()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    plans = preflight(suite, progress)
    spec = suite.spec
    client = TrackingClient()
    experiment_id = _experiment(client, spec.experiment or spec.suite)
    out = Path(out_dir)
    (out / "reports").mkdir(parents=True, exist_ok=True)
    parent_tags = {tags.SUITE: spec.suite, tags.ROLE: tags.PARENT, tags.STATUS: "running",
                   tags.SUITE_DIGEST: hashlib.sha256(suite.text.encode()).hexdigest()[:16]}
    if commit := git_commit(suite.path.parent):
        parent_tags[tags.GIT_COMMIT] = commit
    wanted = baseline or (spec.baseline.run if spec.baseline else None)
    found = resolve_baseline(client, experiment_id, spec.suite, wanted) if spec.baseline else None
    with fluent.start_run(experiment_id=experiment_id, run_name=f"{spec.suite} {time.strftime('%Y-%m-%d %H:%M')}",
                          tags=parent_tags) as parent:
        parent_id = parent.info.run_id
        try:
            client.log_text(parent_id, suite.text, f"suite{suite.path.suffix}")
            if found is not None:
                client.set_tag(parent_id, tags.BASELINE, found.run_id)
            pairs = _evaluate_pairs(client, suite, plans, parent_tags)
            _gate(client, suite, pairs, found)
            for pair in pairs:
                _finish_pair(client, pair, out)
        except BaseException:
            client.set_tag(parent_id, tags.STATUS, ERROR)
            raise
        status = _overall(pairs)
        result = SuiteResult(spec.suite, parent_id, status, pairs, found, out, out / "junit.xml", out / "summary.md",
                             time.monotonic() - started)
        write_junit(result, result.junit_path)
        write_summary(result, result.summary_path)
        client.log_artifact(parent_id, result.junit_path)
        client.log_artifact(parent_id, result.summary_path)
        counts = {s: sum(g.status == s for p in pairs for g in p.gates) for s in (PASSED, FAILED, ERROR, SKIPPED)}
        timestamp = int(time.time() * 1000)
        spent = sum(p.metrics.get("cost/spent_usd", 0.0) for p in pairs)
        client.log_batch(parent_id, metrics=[Metric(f"gates/{s}", float(n), timestamp, 0) for s, n in counts.items()]
                         + [Metric("cost/spent_usd", spent, timestamp, 0)])
        client.set_tag(parent_id, tags.STATUS, status)
        if status == ERROR:
            fluent.end_run(RunStatus.FAILED, reason="; ".join(
                f"{p.dataset} × {p.model}: {p.error or 'a gate could not be judged'}" for p in pairs if p.status == ERROR))
    return result


def _experiment(client: TrackingClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else client.create_experiment(name)


def _evaluate_pairs(client: TrackingClient, suite: Suite, plans: dict[Pair, EvaluationPlan],
                    parent_tags: dict[str, str]) -> list[PairResult]:
    spec = suite.spec
    pairs = []
    spent = 0.0
    for dataset in spec.datasets:
        for model in spec.models:
            pair = PairResult(dataset.name, model.name)
            pairs.append(pair)
            started = time.monotonic()
            budget = None if spec.budget_usd is None else spec.budget_usd - spent
            if budget is not None and budget <= 0:
                pair.status, pair.error = ERROR, f"not run: the suite's budget_usd={spec.budget_usd:g} was spent"
                continue
            pair_tags = {tags.SUITE: spec.suite, tags.ROLE: tags.PAIR, tags.STATUS: "running", tags.DATASET: dataset.name,
                         tags.MODEL: model.name, **({tags.GIT_COMMIT: parent_tags[tags.GIT_COMMIT]}
                                                    if tags.GIT_COMMIT in parent_tags else {})}
            try:
                with fluent.start_run(run_name=f"{dataset.name} × {model.name}", nested=True, tags=pair_tags) as child:
                    pair.run_id = child.info.run_id
                    planned = plans[dataset.name, model.name]
                    # What is left of the suite's budget: the plan checked the model has a price.
                    result = execute(replace(planned, config=planned.config.model_copy(
                        update={"max_cost_usd": budget})))
                    pair.metrics = result.metrics
                    pair.unscored = result.unscored
                    spent += result.metrics.get("cost/spent_usd", 0.0)
                    pair.error = _outage(result, spec.budget_usd)
                    if pair.error:
                        pair.status = ERROR
            except Exception as exc:  # noqa: BLE001 - one pair that cannot run must not stop the others
                pair.status, pair.error = ERROR, failure_text(exc)
            pair.seconds = time.monotonic() - started
    return pairs


def _outage(result: EvaluationResult, budget: float | None) -> str | None:
    """Why an evaluation that returned is still not a measurement of the model, if it is not.
    (An endpoint that was down makes evaluate() raise EvaluationFailed instead.)"""
    if result.stopped_reason == "max_cost_usd":
        return f"the suite's budget_usd={budget:g} was reached; rows were left unanswered"
    if result.stopped_reason:
        return f"the evaluation stopped early: {result.stopped_reason}"
    return None


def _gate(client: TrackingClient, suite: Suite, pairs: list[PairResult], found: Baseline | None) -> None:
    spec = suite.spec
    rules: dict[str, Comparison] = {}
    if spec.baseline is not None:
        for rule in spec.baseline.rules:
            tolerance, relative = parse_tolerance(rule.tolerance) if rule.tolerance is not None else (0.0, False)
            comparison = Comparison(rule.metric, rule.test or "paired", tolerance, relative, rule.min_effect)
            rules[comparison.name] = comparison
    with tempfile.TemporaryDirectory(prefix="evalkit-gates-") as where:
        _gate_pairs(client, suite, pairs, found, rules, Path(where))
    if spec.baseline is not None:
        decide_paired([g for p in pairs for g in p.gates], rules, spec.baseline.alpha, spec.baseline.correction)
    for pair in pairs:
        if pair.status != ERROR:
            pair.status = _worst(g.status for g in pair.gates)


def _gate_pairs(client: TrackingClient, suite: Suite, pairs: list[PairResult], found: Baseline | None,
                rules: dict[str, Comparison], folder: Path) -> None:
    """Each pair's threshold gates and its comparisons with its baseline run, read from ``folder``."""
    for pair in pairs:
        if pair.status == ERROR:
            reason = f"not evaluated: {pair.error}"
            pair.gates = [GateResult(t.text, "threshold", t.metric, ERROR, reason) for t in suite.thresholds]
            pair.gates += [GateResult(name, rule.test, rule.metric, ERROR, reason) for name, rule in rules.items()]
            continue
        assert pair.run_id is not None  # only a pair that could not start lacks one, and it is an error
        current = _scores(client, pair.run_id, folder)
        pair.gates = [check_threshold(t, current) for t in suite.thresholds]
        # An evaluator that scored no row (a judge that was down) is an error even when no gate
        # reads its metric: its absence must not pass unnoticed.
        pair.gates += [GateResult(f"{prefix} scored", "scored", prefix, ERROR, message)
                       for prefix, message in pair.unscored.items()]
        baseline_id = found.for_pair(pair.dataset, pair.model) if found else None
        pair.baseline_run_id = baseline_id
        if not rules:
            continue
        if baseline_id is None:
            why = ("no baseline yet: this suite has no passing run" if found is None
                   else f"the baseline suite run {found.run_id} has no {pair.dataset} × {pair.model} run")
            pair.gates += [GateResult(name, rule.test, rule.metric, SKIPPED, why) for name, rule in rules.items()]
            continue
        try:
            before = _scores(client, baseline_id, folder)
        except NotFound as exc:
            pair.gates += [GateResult(name, rule.test, rule.metric, ERROR, f"baseline unusable: {exc}")
                           for name, rule in rules.items()]
            continue
        pair.gates += [compare(rule, current, before) for rule in rules.values()]


def _scores(client: TrackingClient, run_id: str, folder: Path) -> RunScores:
    """What the gates read of a run: its results table copied into ``folder``, of which only the
    columns without texts are held in memory."""
    run = client.get_run(run_id)
    stored = ResultsFile.download(client, run_id, folder)
    return RunScores(run_id, run.data.metrics, stored.light(), run.data.params.get("dataset_digest"),
                     load_evaluators(client, run), stored)


def _worst(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    return ERROR if ERROR in seen else FAILED if FAILED in seen else PASSED


def _overall(pairs: list[PairResult]) -> str:
    return _worst(p.status for p in pairs)


def _finish_pair(client: TrackingClient, pair: PairResult, out: Path) -> None:
    """Record the pair's gates and status on its run and log its report, then copy the report
    into the output folder. A run whose evaluation raised stays FAILED."""
    if pair.run_id is None:
        return
    run = client.get_run(pair.run_id)
    ended_as = run.info.status
    with fluent.start_run(run_id=pair.run_id, nested=True) as child:
        params = run.data.params
        extra = {tags.STATUS: pair.status}
        for key, tag in (("dataset_digest", tags.DATASET_DIGEST), ("model_snapshot", tags.MODEL_SNAPSHOT)):
            if key in params:
                extra[tag] = params[key]
        if pair.baseline_run_id:
            extra[tags.BASELINE] = pair.baseline_run_id
        fluent.set_tags(extra)
        client.log_dict(child.info.run_id, {"status": pair.status, "error": pair.error,
                                            "baseline_run_id": pair.baseline_run_id,
                                            "gates": [g.to_json() for g in pair.gates]}, tags.GATES_FILE)
        if ended_as is RunStatus.FAILED:
            fluent.end_run(RunStatus.FAILED)
            return
        log_report(client, pair.run_id, pair.baseline_run_id)
    artifacts = client.artifact_repository(pair.run_id)
    if artifacts.is_file(REPORT_FILE):
        pair.report_path = out / "reports" / f"{_slug(pair.dataset)}--{_slug(pair.model)}.html"
        artifacts.download_file(REPORT_FILE, pair.report_path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
