"""An evaluator's metadata (metric prefix, stage, direction, requirements) is declared on the
evaluator, recorded with the run, and read from there by evaluation, preflight, gates and report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from evalkit.evaluators.cost import Cost
from evalkit.evaluators.exact_match import ExactMatch
from evalkit.evaluators.latency import Latency
from evalkit.evaluators.toxicity import Toxicity
from evalkit.reports.model import build_report
from evalkit.reports.render import render_report

import evalkit as ek
from evalkit import plugins
from evalkit.evaluation.run_evaluators import (
    EVALUATORS_FILE,
    higher_is_better,
    load_evaluators,
)
from evalkit.evaluation.scoring import (
    EvaluatorInfo,
    Score,
    evaluator_info,
    mean_with_denominators,
)
from evalkit.suite.gates import FAILED, PASSED, Comparison, compare, decide_paired
from evalkit.suite.job import _scores


class Brevity:
    """A member of a fake ``fam:<metric>`` family (like ``ragas:<metric>``): its name holds a
    ':', so it logs under a prefix of its own. Scores rows whose input says "fail" as failed and
    rows whose input says "skip" as not applicable."""

    def __init__(self, metric: str, judge_available: bool = False) -> None:
        self.name = f"fam:{metric}"
        self.version = "v1"
        self.metric_prefix = f"fam/{metric}/v1"
        self.requires = ()

    async def score(self, rows, context=None):
        def one(row):
            if "fail" in row.input:
                return Score(None, error="the scorer broke on this row")
            if "skip" in row.input:
                return Score(None, applicable=False, justification="nothing to measure")
            return Score(1.0 / len(row.output.split()))
        return [one(row) for row in rows]

    def aggregate(self, scores):
        return mean_with_denominators(scores)


@pytest.fixture
def family(monkeypatch):
    """The ``fam`` family installed as if through the evalkit.evaluator_families entry-point group."""
    real = plugins.find_plugins

    def find(group: str):
        found = real(group)
        if group == plugins.EVALUATOR_FAMILIES:
            found["fam"] = SimpleNamespace(name="fam", load=lambda: Brevity)
        return found

    monkeypatch.setattr(plugins, "find_plugins", find)


def data() -> pd.DataFrame:
    return pd.DataFrame({"inputs": ["q one", "q two", "q three", "fail four", "fail five", "skip six"]})


def test_defaults_for_what_an_evaluator_leaves_out_and_the_built_ins_declarations():
    class Bare:
        name, version = "bare", "v2"

        async def score(self, rows, context=None):
            return []

        def aggregate(self, scores):
            return {}

    assert evaluator_info(Bare()) == EvaluatorInfo("bare", "v2", "bare/v2", "score", True, ())
    latency, cost = evaluator_info(Latency()), evaluator_info(Cost())
    assert (latency.metric_prefix, latency.stage, latency.higher_is_better) == ("latency", "post", False)
    assert (cost.metric_prefix, cost.stage, cost.higher_is_better) == ("cost", "post", False)
    toxicity = evaluator_info(Toxicity())
    assert toxicity.metric_prefix == "toxicity/offline-v1" and not toxicity.higher_is_better
    exact_match = EvaluatorInfo("exact_match", "v1", "exact_match/v1", "score", True, ("targets",))
    assert evaluator_info(ExactMatch()) == exact_match
    info = evaluator_info(Brevity("brevity"))
    assert info.owns("fam/brevity/v1/mean") and not info.owns("fam/brevity/v10/mean")
    assert EvaluatorInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


@pytest.mark.parametrize(("declared", "message"), [
    ({"stage": "later"}, "evaluator 'odd' has stage 'later'; use one of score, post"),
    ({"requires": ("gpu",)}, r"evaluator 'odd' requires unknown data \['gpu'\]"),
    ({"requires": "targets"}, "requires must be a sequence of names, got 'targets'"),
    ({"higher_is_better": "no"}, "higher_is_better must be True or False"),
    ({"metric_prefix": "odd:x"}, "would log its metrics as odd:x/<aggregate>, which is not a valid metric key"),
])
def test_unusable_declarations_are_refused_before_any_model_call(declared, message):
    calls = []
    odd = Brevity("x")
    odd.name, odd.metric_prefix = "odd", None
    for key, value in declared.items():
        setattr(odd, key, value)
    with pytest.raises(ek.InvalidArgument, match=message):
        ek.evaluate(model=lambda q: calls.append(q) or "a", data=data(), evaluators=[odd], progress=False)
    assert calls == []


def test_a_name_that_is_no_metric_key_says_to_set_metric_prefix_and_two_evaluators_cannot_share_one():
    odd = Brevity("x")
    odd.name, odd.metric_prefix = "odd:x", None
    with pytest.raises(ek.InvalidArgument, match=r"odd:x/v1/<aggregate>.*set metric_prefix"):
        evaluator_info(odd)
    first, second = Brevity("x"), Brevity("x")
    second.name = "other"
    with pytest.raises(ek.InvalidArgument, match="'fam:x' and 'other' both log their metrics under 'fam/x/v1'"):
        ek.evaluate(model=lambda q: "a", data=data(), evaluators=[first, second], progress=False)


def test_a_prefixed_evaluators_report_card_shows_its_denominators(family):
    result = ek.evaluate(model=lambda q: "just two" if "one" in q else "three words here", data=data(),
                         evaluators=["fam:brevity"], progress=False)
    assert result.metrics["fam/brevity/v1/rows_scored"] == 3
    assert [e.metric_prefix for e in result.evaluators] == ["fam/brevity/v1"]

    client = ek.TrackingClient()
    recorded = json.loads(client.load_text(result.run_id, EVALUATORS_FILE))["evaluators"]
    assert recorded[0] == {"name": "fam:brevity", "version": "v1", "metric_prefix": "fam/brevity/v1", "stage": "score",
                           "higher_is_better": True, "requires": []}

    report = build_report(client, result.run_id)
    (card,) = report.cards
    assert card.name == "fam:brevity" and card.label == "fam/brevity/v1/mean"
    assert card.denominators == {"rows_scored": 3, "rows_failed": 2, "rows_not_applicable": 1}
    assert card.interval is not None and card.interval.n == 3

    html = render_report(report)
    card_html = re.search(r'<div class="metric-card" data-metric="fam:brevity".*?<div class="denominators">(.*?)</div>',
                          html, re.S)
    assert card_html and card_html.group(1) == "3 scored · 2 failed · 1 n/a"
    assert card_html.group(0) in Path(result.artifacts["report"]).read_text()  # the report evaluate() logged


def test_a_run_logged_before_evaluators_json_still_gets_its_prefixes_and_directions(family):
    result = ek.evaluate(model=lambda q: "two words", data=data(),
                         evaluators=["fam:brevity", "toxicity", "latency", "cost"], progress=False)
    client = ek.TrackingClient()
    (Path(client.get_run(result.run_id).info.artifact_uri) / EVALUATORS_FILE).unlink()

    infos = load_evaluators(client, client.get_run(result.run_id))
    assert [(i.name, i.metric_prefix, i.higher_is_better) for i in infos] == [
        ("fam:brevity", "fam/brevity/v1", True), ("toxicity", "toxicity/offline-v1", False),
        ("latency", "latency", False), ("cost", "cost", False)]
    card = build_report(client, result.run_id).cards[0]
    assert card.denominators == {"rows_scored": 3, "rows_failed": 2, "rows_not_applicable": 1}


def test_gates_take_a_metrics_direction_from_its_evaluators_declaration(tmp_path):
    """An evaluator better low that no name rule could know about: longer answers are worse."""

    @ek.evaluator(name="wordiness", higher_is_better=False)
    def wordiness(row: ek.EvalRow) -> float:
        return float(len(row.output.split()))

    rows = pd.DataFrame({"inputs": [f"question {i}" for i in range(40)]})
    before = ek.evaluate(model=lambda q: "short", data=rows, evaluators=["wordiness"], progress=False)
    after = ek.evaluate(model=lambda q: "a much longer answer", data=rows, evaluators=["wordiness"], progress=False)
    client = ek.TrackingClient()
    current, baseline = _scores(client, after.run_id, tmp_path), _scores(client, before.run_id, tmp_path)
    assert not higher_is_better("wordiness/v1/mean", current.evaluators)

    paired = Comparison("wordiness/mean", "paired")
    tolerance = Comparison("wordiness/mean", "tolerance", tolerance=0.5)
    gates = [compare(paired, current, baseline), compare(tolerance, current, baseline)]
    decide_paired(gates, {paired.name: paired}, alpha=0.025, correction="holm")
    assert [g.status for g in gates] == [FAILED, FAILED]
    assert gates[0].worst_rows and gates[0].worst_rows[0]["value"] == 4.0

    # The same change the other way round is an improvement.
    improved = [compare(paired, baseline, current), compare(tolerance, baseline, current)]
    decide_paired(improved, {paired.name: paired}, alpha=0.025, correction="holm")
    assert [g.status for g in improved] == [PASSED, PASSED]


def test_run_metrics_have_one_table_of_directions():
    assert not higher_is_better("error_rate", []) and not higher_is_better("latency_total/p95_ms", [])
    assert not higher_is_better("cost/per_query_usd", []) and not higher_is_better("tokens/input", [])
    assert higher_is_better("rows/answered", []) and higher_is_better("my_score", [])
    lower = EvaluatorInfo("errors_found", "v1", "errors_found/v1", higher_is_better=False)
    assert not higher_is_better("errors_found/v1/mean", [lower]) and higher_is_better("errors_found/v1/mean", [])
