"""assert_eval and the pytest plugin's evalkit_tracking fixture."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.testing import assert_eval

pytest_plugins = ["pytester"]

RAG_QA = Path(__file__).resolve().parents[2] / "datasets" / "rag_qa.jsonl"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_json(RAG_QA, lines=True).head(4)


@pytest.fixture
def result(rows: pd.DataFrame) -> ek.EvaluationResult:
    # conftest's autouse _isolated fixture has the test in its own folder with its own store
    return ek.evaluate(model="evalkit:/extractive", data=rows, targets="ground_truth",
                       cache="off", report=False, progress=False)


def failure(result: ek.EvaluationResult | str, *expressions: str, **kwargs: int) -> str:
    with pytest.raises(AssertionError) as info:
        assert_eval(result, *expressions, **kwargs)
    return str(info.value)


def test_passing_expressions(result):
    assert_eval(result, "faithfulness/kprecision-v1/mean >= 0.8", "error_rate <= 0%", "rows/total == 4")


def test_short_metric_names(result):
    assert_eval(result, "faithfulness/mean >= 0.8", "faithfulness/v1/mean >= 0.8", "latency/p95 <= 60000")


def test_failure_lists_the_observed_value_and_the_worst_rows(result, rows):
    table = result.tables["eval_results_table"]
    observed = result.metrics["token_f1/v1/mean"]
    message = failure(result, "token_f1/mean >= 0.99", worst=2)
    assert result.run_id in message
    assert "token_f1/mean >= 0.99" in message
    assert f"token_f1/v1/mean = {observed:.6g}, not >= 0.99" in message
    assert "(rows: 4 scored, 0 failed)" in message
    worst = table.sort_values("token_f1/score", kind="stable").head(2)
    for _, row in worst.iterrows():
        assert f"row {row['row']}, score {row['token_f1/score']:.4g}, input: {row['inputs']}" in message
        assert row["inputs"] in message
        assert row["token_f1/justification"] in message
    best = table.sort_values("token_f1/score", kind="stable").iloc[-1]
    assert best["inputs"] not in message  # worst=2 of 4 rows


def test_every_failing_expression_is_reported(result):
    message = failure(result, "faithfulness/mean >= 0.8", "token_f1/mean >= 0.99", "exact_match/mean > 0.5",
                      "error_rate <= 0%")
    assert message.startswith(f"2 of 4 evalkit expressions failed for run {result.run_id}:")
    assert "- token_f1/mean >= 0.99" in message and "- exact_match/mean > 0.5" in message
    assert "faithfulness" not in message and "error_rate" not in message


def test_unknown_metric_lists_available_names(result):
    message = failure(result, "faithfulnes/mean >= 0.8")
    assert "no metric 'faithfulnes/mean'; metrics: answer_correctness/f1sim-v1/mean," in message
    assert "faithfulness/kprecision-v1/mean" in message
    message = failure(result, "faithfulness/v2/mean >= 0.8", "faithfulness/mean >= 0.8")
    assert message.startswith("1 of 2 evalkit expressions failed")
    assert "no metric 'faithfulness/v2/mean'; metrics of faithfulness: faithfulness/kprecision-v1/mean," in message


def test_a_bad_expression_raises_at_once(result):
    with pytest.raises(ek.InvalidArgument, match="cannot read threshold"):
        assert_eval(result, "faithfulness/mean >= 0.8", "faithfulness/mean is high")


def test_run_id(result):
    assert_eval(result.run_id, "faithfulness/v1/mean >= 0.8")
    message = failure(result.run_id, "token_f1/mean >= 0.99")
    assert result.run_id in message and "worst rows for token_f1/v1/mean" in message
    assert result.tables["eval_results_table"]["inputs"].iloc[0] in message


def test_evalkit_tracking_fixture(pytester, rows):
    rows.to_json(pytester.path / "rows.jsonl", orient="records", lines=True)
    pytester.makeconftest('pytest_plugins = ["evalkit.testing.pytest_plugin"]')
    pytester.makepyfile("""
        from pathlib import Path
        import evalkit as ek
        from evalkit.testing import assert_eval

        def test_runs_land_in_tmp_path(evalkit_tracking, tmp_path):
            assert evalkit_tracking == ek.get_tracking_uri() == f"sqlite:///{tmp_path / 'evalkit.db'}"
            result = ek.evaluate(model="evalkit:/extractive", data=str(Path.cwd() / "rows.jsonl"),
                                 targets="ground_truth", cache="off", report=False, progress=False)
            assert_eval(result.run_id, "faithfulness/mean >= 0.8")
            assert (tmp_path / "evalkit.db").is_file()

        def test_the_previous_uri_is_back():
            assert ek.get_tracking_uri() == f"sqlite:///{Path.cwd() / 'outer.db'}"
    """)
    ek.set_tracking_uri("outer.db")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert ek.get_tracking_uri() == f"sqlite:///{Path.cwd() / 'outer.db'}"
    assert not Path("outer.db").exists()  # nothing was logged outside the fixture's store


def test_a_metric_most_rows_could_not_score_fails_even_above_its_threshold():
    # a run logged by hand: no results table, so no rows to show, only the gate's reason
    with ek.start_run() as run:
        ek.log_metrics({"faithfulness/judge-v1/mean": 0.95, "faithfulness/judge-v1/rows_scored": 1,
                        "faithfulness/judge-v1/rows_failed": 3})
    message = failure(run.info.run_id, "faithfulness/mean >= 0.8")
    assert "faithfulness/judge-v1/mean is not reliable: 3 of 4 rows could not be scored" in message
    assert "(rows: 1 scored, 3 failed)" in message
