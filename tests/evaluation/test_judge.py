"""LLM judges: JSON parsing and re-asks, refusals and timeouts as per-row errors, endpoint
fallbacks, shared statement splits, judge cost kept apart, and judged metrics end to end."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import JudgeError
from evalkit.evaluation.judge import LLMJudge, parse_json_loose
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.resolve import build_model, parse_model_uri
from evalkit.inference.runner.caller import ModelCaller, RetryPolicy
from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))


def ask(server: FakeOpenAIServer, validate=lambda d: d["x"], timeout: float = 5.0, max_attempts: int = 2):
    model = build_model(parse_model_uri(f"openai:/gpt-4o-mini?base_url={server.base_url}"), timeout=timeout)
    judge = LLMJudge(ModelCaller(model, {}, PriceTable.load(), policy=RetryPolicy(max_attempts, 10, timeout, 0.001, 0.01)))

    async def go():
        try:
            return await judge.ask_json(0, [{"role": "user", "content": "judge this"}], validate, {"type": "object"})
        finally:
            await model.aclose()

    return judge, asyncio.run(go())


@pytest.mark.parametrize("text, expected", [
    ('{"x": 1}', {"x": 1}),
    ('```json\n{"x": 2}\n```', {"x": 2}),
    ('Sure! Here it is: {"x": 3} Hope that helps.', {"x": 3}),
])
def test_parse_json_loose(text, expected):
    assert parse_json_loose(text) == expected


def test_parse_json_loose_refuses_text_without_an_object():
    with pytest.raises(ValueError, match="no JSON object"):
        parse_json_loose("I'm sorry, I can't help with that.")


def test_malformed_reply_is_re_asked_and_the_raw_replies_are_kept():
    def responder(body):
        reasked = any(m["role"] == "assistant" for m in body["messages"])
        return '{"x": 42}' if reasked else "the answer is 42"

    with FakeOpenAIServer(responder=responder) as server:
        judge, reply = ask(server)
    assert reply.value == 42 and judge.calls == 2
    assert "the answer is 42" in reply.raw and '{"x": 42}' in reply.raw


def test_garbage_refusal_and_invalid_values_end_as_judge_errors_after_bounded_re_asks():
    for responder, validate in [
        (lambda body: "I'm sorry, I can't help with that.", lambda d: d["x"]),
        (lambda body: '{"y": 1}', lambda d: d["x"]),
        (lambda body: '{"x": 7}', lambda d: d["x"] if d["x"] <= 1 else (_ for _ in ()).throw(ValueError("x must be <= 1"))),
    ]:
        with FakeOpenAIServer(responder=responder) as server:
            with pytest.raises(JudgeError, match="no usable JSON in 3 tries") as info:
                ask(server, validate)
            assert server.stats.requests == 3
        assert info.value.raw.count("---") == 2  # all three raw replies kept for audit


def test_a_judge_that_hangs_gives_a_judge_error():
    with FakeOpenAIServer(FakeConfig(rate_hang=1.0)) as server:
        with pytest.raises(JudgeError, match="failed after 2 attempts.*timeout"):
            ask(server, timeout=0.2)


def test_temperature_zero_and_structured_outputs_then_fallbacks():
    seen = []

    def responder(body):
        seen.append((body.get("temperature"), (body.get("response_format") or {}).get("type")))
        return '{"x": 1}'

    with FakeOpenAIServer(responder=responder) as server:
        ask(server)
        assert seen[-1] == (0, "json_schema")
        server.config.unsupported_response_formats = {"json_schema"}
        server.config.default_temperature_only = True
        seen.clear()
        judge, reply = ask(server)
    assert reply.value == 1 and seen == [(None, "json_object")]  # the refused requests never reach the responder


def test_judged_metrics_end_to_end_with_shared_statement_splits_and_separate_judge_cost():
    data = pd.DataFrame({
        "inputs": ["Where is lamp 1?", "Where is lamp 2?", "Where is lamp 3?"],
        "contexts": [["Lamp 1 is in aisle 4."], ["Lamp 2 is in aisle 7."], []],
        "ground_truth": ["Lamp 1 is in aisle 4.", "Lamp 2 is in aisle 7. It is blue.", "Lamp 3 is in aisle 9."],
    })
    answers = {"Where is lamp 1?": "Lamp 1 is in aisle 4.", "Where is lamp 2?": "Lamp 2 is in aisle 7. Lamp 2 is red.",
               "Where is lamp 3?": "Lamp 3 is in aisle 9."}
    with FakeOpenAIServer(responder=judge_responder) as server:
        judge = f"openai:/gpt-4o-mini?base_url={server.base_url}"
        result = ek.evaluate(model=lambda q: answers[q], data=data, targets="ground_truth", judge=judge,
                             evaluators=["faithfulness", "answer_correctness", "cost"], progress=False)
        requests = server.stats.requests
        again = ek.evaluate(model=lambda q: answers[q], data=data, targets="ground_truth", judge=judge,
                            evaluators=["faithfulness", "answer_correctness", "cost"], progress=False)
        assert server.stats.requests == requests  # the second run's judge calls all came from the cache
    table, metrics = result.tables["eval_results_table"], result.metrics
    # faithfulness: row 0 1/1, row 1 1/2 (red is not in the passages), row 2 has no context
    assert table["faithfulness/score"].tolist()[:2] == [1.0, 0.5] and pd.isna(table["faithfulness/score"][2])
    assert metrics["faithfulness/judge-v1/mean"] == 0.75
    assert metrics["faithfulness/judge-v1/rows_scored"] == 2 and metrics["faithfulness/judge-v1/rows_not_applicable"] == 1
    assert "unsupported: 'Lamp 2 is red.'" in table["faithfulness/justification"][1]
    assert '"verdicts"' in table["faithfulness/raw"][1]
    # answer correctness row 1: TP 1, FP 1, FN 1 -> F1 0.5
    assert "TP 1, FP 1, FN 1, F1 0.500" in table["answer_correctness/justification"][1]
    from evalkit.evaluators.embeddings import similarity

    sim = float(similarity([answers["Where is lamp 2?"]], ["Lamp 2 is in aisle 7. It is blue."])[0])
    assert table["answer_correctness/score"][1] == pytest.approx(0.75 * 0.5 + 0.25 * min(max(sim, 0), 1))
    # Each distinct split is asked once: the answer's split serves both metrics, and rows 0 and 2,
    # whose answer equals the reference, need one split for both. Row 0: split, classify, verdicts;
    # row 1: two splits, classify, verdicts; row 2 (no context, so no verdicts): split, classify.
    assert requests == 3 + 4 + 2
    assert metrics["judge/calls"] == requests and again.metrics["judge/cache_hits"] == requests
    assert metrics["cost/judge_usd"] > 0 and metrics["cost/unpriced_rows"] == 3  # a function has no price
    assert "cost/model_usd" not in metrics
    params = ek.get_run(result.run_id).data.params
    assert params["judge_uri"] == judge and params["judge_snapshot"] == "gpt-4o-mini-2024-07-18"
    assert "faithfulness@judge-v1" in params["evaluators"]


def test_judge_failures_are_per_row_errors_counted_in_the_denominators():
    def responder(body):
        conversation = " ".join(m["content"] for m in body["messages"])
        return "no idea" if "lamp 2" in conversation else judge_responder(body)

    data = pd.DataFrame({"inputs": ["lamp 1?", "lamp 2?"], "contexts": [["lamp 1 is here."], ["lamp 2 is here."]]})
    with FakeOpenAIServer(responder=responder) as server:
        result = ek.evaluate(model=lambda q: q.replace("?", " is here."), data=data, evaluators=["faithfulness"],
                             judge=f"openai:/gpt-4o-mini?base_url={server.base_url}", progress=False)
    table = result.tables["eval_results_table"]
    assert table["faithfulness/score"][0] == 1.0 and pd.isna(table["faithfulness/score"][1])
    assert "no usable JSON" in table["faithfulness/justification"][1] and "no idea" in table["faithfulness/raw"][1]
    assert result.metrics["faithfulness/judge-v1/rows_failed"] == 1
    assert result.metrics["faithfulness/judge-v1/rows_scored"] == 1


def test_without_a_judge_the_offline_methods_run_and_say_so():
    data = pd.DataFrame({"inputs": ["q"], "contexts": [["Lamp 1 is in aisle 4."]], "ground_truth": ["aisle 4"]})
    result = ek.evaluate(data=data.assign(answer="Lamp 1 is in aisle 4."), predictions="answer", targets="ground_truth",
                         evaluators=["faithfulness", "answer_correctness"], progress=False)
    assert "faithfulness/kprecision-v1/mean" in result.metrics
    assert "answer_correctness/f1sim-v1/mean" in result.metrics
    with pytest.raises(ek.InvalidArgument, match="needs judge"):
        ek.evaluate(data=data.assign(answer="x"), predictions="answer",
                    evaluators=["faithfulness"], evaluator_config={"faithfulness": {"method": "judge"}}, progress=False)
