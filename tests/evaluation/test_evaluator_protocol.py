"""Writing your own evaluator: a ten-line function with @evaluator, or an object; how evaluate()
finds, checks and scores them."""

from __future__ import annotations

import pandas as pd
import pytest

import evalkit as ek


def data(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"inputs": [f"price of lamp {i}?" for i in range(rows)],
                         "ground_truth": [f"${10 + i}" for i in range(rows)]})


def test_a_ten_line_function_is_an_evaluator():
    @ek.evaluator(requires=["targets"])
    def mentions_target(row: ek.EvalRow) -> bool:
        return row.target in row.output

    result = ek.evaluate(model=lambda q: "It costs $10." if q.endswith("0?") else "Ask sales.", data=data(),
                         targets="ground_truth", evaluators=["mentions_target"], progress=False)
    assert result.tables["eval_results_table"]["mentions_target/score"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert result.metrics["mentions_target/v1/mean"] == 0.25
    assert result.metrics["mentions_target/v1/rows_scored"] == 4
    assert "mentions_target@v1" in ek.get_run(result.run_id).data.params["evaluators"]


def test_the_function_itself_can_be_passed_and_exceptions_fail_only_their_row():
    @ek.evaluator(name="answer_length", version="v2")
    async def length(row: ek.EvalRow) -> float:
        if "2" in row.input:
            raise ValueError("cannot measure this one")
        return len(row.output)

    result = ek.evaluate(model=lambda q: "abc", data=data(), extra_metrics=[length], evaluators=[], progress=False)
    table = result.tables["eval_results_table"]
    assert table["answer_length/score"].tolist()[:2] == [3.0, 3.0] and pd.isna(table["answer_length/score"][2])
    assert "ValueError: cannot measure this one" in table["answer_length/justification"][2]
    assert result.metrics["answer_length/v2/rows_failed"] == 1 and result.metrics["answer_length/v2/mean"] == 3.0


def test_an_evaluator_object_with_its_own_aggregate():
    class Shouting:
        name, version, requires = "shouting", "v1", ()

        async def score(self, rows, context=None):
            return [ek.Score(float(r.output.isupper()), "all capitals" if r.output.isupper() else "calm") for r in rows]

        def aggregate(self, scores):
            return {"share": sum(s.value for s in scores) / len(scores)}

    result = ek.evaluate(model=lambda q: q.upper() if "1" in q else q, data=data(), evaluators=[Shouting()], progress=False)
    assert result.metrics["shouting/v1/share"] == 0.25


def test_missing_data_unknown_names_and_stray_config_are_clear_errors_before_any_call():
    calls = []
    model = lambda q: calls.append(q) or "x"  # noqa: E731
    with pytest.raises(ek.InvalidArgument, match="evaluator 'exact_match' needs targets"):
        ek.evaluate(model=model, data=data()[["inputs"]], evaluators=["exact_match"], progress=False)
    with pytest.raises(ek.InvalidArgument, match="evaluator 'faithfulness' needs contexts"):
        ek.evaluate(model=model, data=data(), evaluators=["faithfulness"], progress=False)
    with pytest.raises(ek.InvalidArgument, match="unknown evaluator 'faithfullness'; available: .*faithfulness"):
        ek.evaluate(model=model, data=data(), evaluators=["faithfullness"], progress=False)
    with pytest.raises(ek.InvalidArgument, match="evaluator_config names evaluators that are not used: toxic"):
        ek.evaluate(model=model, data=data(), evaluator_config={"toxic": {}}, progress=False)
    with pytest.raises(ek.InvalidArgument, match="evaluator_config for 'toxicity' is not accepted"):
        ek.evaluate(model=model, data=data(), evaluator_config={"toxicity": {"colour": "red"}}, progress=False)
    with pytest.raises(ek.InvalidArgument, match="retrieval-augmented.*needs contexts"):
        ek.evaluate(model=model, data=data(), model_type="retrieval-augmented", progress=False)
    with pytest.raises(ek.InvalidArgument, match="'latency' needs model_run"):
        ek.evaluate(data=data().assign(a="x"), predictions="a", evaluators=["latency"], progress=False)
    assert calls == []


def test_defaults_follow_the_model_type_and_the_data():
    model = lambda q: "fine"  # noqa: E731
    text = ek.evaluate(model=model, data=data()[["inputs"]], model_type="text", progress=False)
    assert ek.get_run(text.run_id).data.params["evaluators"] == "toxicity@offline-v1,latency@v1,cost@v1"
    qa = ek.evaluate(model=model, data=data(), targets="ground_truth", progress=False)
    names = ek.get_run(qa.run_id).data.params["evaluators"]
    assert "answer_correctness@f1sim-v1" in names and "faithfulness" not in names  # no contexts: left out
    predictions = ek.evaluate(data=data().assign(a="$10"), predictions="a", targets="ground_truth", progress=False)
    assert "latency" not in ek.get_run(predictions.run_id).data.params["evaluators"]


def test_an_evaluator_that_fails_as_a_whole_fails_its_rows_and_the_others_still_score():
    class Broken:
        name, version, requires = "broken", "v1", ()

        async def score(self, rows, context=None):
            raise ConnectionError("embeddings endpoint unreachable")

        def aggregate(self, scores):
            return ek.scoring.mean_with_denominators(scores)

    result = ek.evaluate(model=lambda q: "$10", data=data(), targets="ground_truth",
                         evaluators=[Broken(), "exact_match"], progress=False)
    assert result.metrics["broken/v1/rows_failed"] == 4 and result.metrics["exact_match/v1/rows_scored"] == 4
    assert "embeddings endpoint unreachable" in result.tables["eval_results_table"]["broken/justification"][0]
