"""The RAG metrics: answer_relevancy, context_precision and context_recall, judged and offline.

Formulas are checked on hand-computed rows (offline from the tokens, judged with a scripted
judge whose replies are fixed), then end to end through the fake server: the shared reference
split, the report's cards and the suite's expected metrics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evalkit.evaluators.answer_relevancy import AnswerRelevancy, JudgedAnswerRelevancy
from evalkit.evaluators.answer_relevancy_offline import (
    OfflineAnswerRelevancy,
    noncommittal_reason,
)
from evalkit.evaluators.context_precision import (
    ContextPrecision,
    JudgedContextPrecision,
)
from evalkit.evaluators.context_precision_offline import OfflineContextPrecision
from evalkit.evaluators.context_recall import ContextRecall, JudgedContextRecall
from evalkit.evaluators.context_recall_offline import OfflineContextRecall
from evalkit.evaluators.embeddings import embed
from evalkit.evaluators.ranking import average_precision

import evalkit as ek
from evalkit.errors import InvalidArgument, JudgeError
from evalkit.evaluation.registry import DEFAULTS, resolve_evaluators
from evalkit.evaluation.scoring import EvalRow, JudgeReply, Score, ScoringContext
from evalkit.suite.preflight import expected_metrics
from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import FakeOpenAIServer


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))


def row(i: int = 0, question: str = "What colour is lamp 3?", output: str | None = "Lamp 3 is red.",
        target: str | None = None, contexts: list[str] | None = None) -> EvalRow:
    return EvalRow(i, question, output, target, contexts or [])


class ScriptedJudge:
    """A judge whose replies are fixed: ``reply(messages)`` gives the JSON object."""

    uri = "scripted:/judge"

    def __init__(self, reply: Callable[[list[dict[str, str]]], Any]) -> None:
        self.reply = reply
        self.asked: list[list[dict[str, str]]] = []

    async def ask_json(self, row_index, messages, validate, schema=None):
        self.asked.append(messages)
        data = self.reply(messages)
        if isinstance(data, Exception):
            raise data
        return JudgeReply(validate(data), json.dumps(data))


def score(evaluator: Any, rows: list[EvalRow], judge: Any = None) -> list[Score]:
    return asyncio.run(evaluator.score(rows, ScoringContext(judge)))


# ---- average precision ------------------------------------------------------------------------

@pytest.mark.parametrize("verdicts, expected", [
    ([1], 1.0), ([0], 0.0), ([], 0.0), ([1, 0], 1.0), ([0, 1], 0.5),
    ([1, 0, 1], (1 / 1 + 2 / 3) / 2), ([0, 1, 1], (1 / 2 + 2 / 3) / 2), ([0, 0, 1], 1 / 3),
])
def test_average_precision_counts_rank(verdicts, expected):
    assert average_precision(verdicts) == pytest.approx(expected, abs=1e-15)


# ---- offline ----------------------------------------------------------------------------------

REFERENCE = "Lamp 3 is painted red. Lamp 3 weighs 4 kilograms."
RED, PRICE, WEIGHT = "Lamp 3 is painted red.", "Lamp 3 costs 40 euros.", "It weighs 4 kilograms in its box."


def test_offline_context_precision_on_hand_computed_rows():
    # Reference sentences: {lamp, 3, painted, red} and {lamp, 3, weighs, 4, kilograms}.
    # PRICE holds lamp, 3: half of the first sentence, not more -> not useful.
    # RED holds all of the first; WEIGHT holds weighs, 4, kilograms: 3/5 of the second -> useful.
    rows = [row(0, target=REFERENCE, contexts=[PRICE, RED]),          # [0, 1] -> 1/2
            row(1, target=REFERENCE, contexts=[RED, PRICE]),          # [1, 0] -> 1
            row(2, target=REFERENCE, contexts=[PRICE, RED, WEIGHT]),  # [0, 1, 1] -> (1/2 + 2/3) / 2
            row(3, target=REFERENCE, contexts=[PRICE]),               # [0] -> 0
            row(4, target=REFERENCE, contexts=[RED], output=None)]    # the answer is not used
    scores = score(OfflineContextPrecision(), rows)
    assert [s.value for s in scores] == pytest.approx([0.5, 1.0, (1 / 2 + 2 / 3) / 2, 0.0, 1.0])
    assert scores[2].justification == "contexts at ranks 2, 3 of 3 hold part of the reference"
    assert scores[3].justification == "none of the 1 contexts holds part of the reference"
    # threshold 0.4: PRICE's half of the first sentence is now enough
    assert score(OfflineContextPrecision(0.4), rows[:1])[0].value == 1.0


def test_offline_context_recall_on_hand_computed_rows():
    # reference content tokens (with repetition): lamp 3 painted red lamp 3 weighs 4 kilograms
    rows = [row(0, target=REFERENCE, contexts=[RED]),           # 6 of 9 (not weighs, 4, kilograms)
            row(1, target=REFERENCE, contexts=[WEIGHT, RED]),   # 9 of 9
            row(2, target=REFERENCE, contexts=[PRICE]),         # lamp 3 lamp 3: 4 of 9
            row(3, target=REFERENCE, contexts=[RED], output=None)]
    scores = score(OfflineContextRecall(), rows)
    assert [s.value for s in scores] == pytest.approx([6 / 9, 1.0, 4 / 9, 6 / 9])
    assert scores[0].justification == "6 of 9 reference content tokens appear in the contexts; missing: weighs, 4, kilograms"


@pytest.mark.parametrize("evaluator", [OfflineContextPrecision(), OfflineContextRecall()])
def test_offline_context_metrics_not_applicable(evaluator):
    rows = [row(0, target=REFERENCE, contexts=[]), row(1, target=REFERENCE, contexts=["  "]),
            row(2, target=None, contexts=[RED]), row(3, target="It is.", contexts=[RED])]
    scores = score(evaluator, rows)
    assert [s.applicable for s in scores] == [False] * 4
    assert [s.justification for s in scores] == ["the row has no retrieved context"] * 2 + [
        "the row has no target", "the target has no content words"]
    aggregate = evaluator.aggregate(scores)
    assert aggregate == {"rows_scored": 0.0, "rows_failed": 0.0, "rows_not_applicable": 4.0}


@pytest.mark.parametrize("answer, phrase", [
    ("I don't know.", "I don't know"), ("  ...", "empty"), ("I’m not sure which lamp you mean.", "I'm not sure"),
    ("The context does not mention the colour.", "does not mention"), ("It depends on the shop.", "It depends"),
    ("There is not enough information to answer.", "not enough information"),
    ("I cannot answer that from the documents.", "I cannot answer"),
])
def test_noncommittal_answers_are_detected(answer, phrase):
    assert phrase in noncommittal_reason(answer)


@pytest.mark.parametrize("answer", ["No.", "Yes, in aisle 4.", "Lamp 3 is red; the manual does not say more."])
def test_committed_answers_are_not_flagged(answer):
    assert noncommittal_reason(answer) is None or answer.endswith("more.")


def test_offline_answer_relevancy_is_the_question_answer_similarity_or_0_when_noncommittal():
    rows = [row(0, "What colour is lamp 3?", "Lamp 3 is painted red."),
            row(1, "What colour is lamp 3?", "The documents do not say."),
            row(2, "What colour is lamp 3?", None)]
    scores = score(OfflineAnswerRelevancy(), rows)
    q, a = embed(["What colour is lamp 3?", "Lamp 3 is painted red."])
    assert scores[0].value == pytest.approx(float(np.clip(q @ a, 0, 1)), abs=1e-12) and 0 < scores[0].value < 1
    assert scores[1].value == 0.0 and scores[1].justification == "non-committal answer ('do not say')"
    assert scores[2].error == "no output: the model call failed"


def test_offline_answer_relevancy_of_the_question_itself_is_1():
    assert score(OfflineAnswerRelevancy(), [row(0, "Which lamp is red?", "Which lamp is red?")])[0].value == pytest.approx(1.0)


# ---- judged, with a scripted judge ------------------------------------------------------------

def test_judged_context_precision_is_the_average_precision_of_the_verdicts_in_retrieval_order():
    verdicts = {"A": 0, "B": 1, "C": 1}

    def reply(messages):
        passages = messages[1]["content"].split("Passages:\n")[1].split("\n\n")
        return {"verdicts": [{"passage": i, "reason": "r", "verdict": verdicts[p[4:]]} for i, p in enumerate(passages, 1)]}

    rows = [row(0, target="T", contexts=["A", "B", "C"]), row(1, target="T", contexts=["C", "B", "A"]),
            row(2, target="T", contexts=["A"]), row(3, target="T", contexts=[]), row(4, target=None, contexts=["A"]),
            row(5, target="T", contexts=["B"], output=None)]
    judge = ScriptedJudge(reply)
    scores = score(JudgedContextPrecision(), rows, judge)
    assert [s.value for s in scores[:3]] == pytest.approx([(1 / 2 + 2 / 3) / 2, 1.0, 0.0])
    assert [s.applicable for s in scores[3:5]] == [False, False] and scores[5].value == 1.0
    assert scores[0].justification == "useful contexts at ranks 2, 3 of 3"
    assert "Question: What colour is lamp 3?\n\nReference answer: T\n\nPassages:\n[1] A\n\n[2] B\n\n[3] C" == judge.asked[0][1]["content"]
    assert len(judge.asked) == 4  # one request per applicable row, whatever its number of contexts


def test_judged_context_precision_re_asks_when_the_verdicts_do_not_match_the_passages():
    with pytest.raises(ValueError, match="expected 2 verdicts, one per passage"):
        from evalkit.evaluators.statements import verdicts_validator
        verdicts_validator(2, "passage")({"verdicts": [{"verdict": 1}]})


def test_judged_context_recall_is_the_share_of_reference_statements_found():
    def reply(messages):
        if "atomic claims" in messages[0]["content"]:
            reference = messages[1]["content"].split("Answer: ")[1]
            return {"statements": [s for s in reference.split(". ") if s and s != "Nothing"]}
        statements = messages[1]["content"].split("Statements:\n")[1].splitlines()
        return {"verdicts": [{"statement": s, "reason": "r", "verdict": int("x" not in s)} for s in statements]}

    rows = [row(0, target="a. bx. c", contexts=["ctx"]),  # 2 of 3
            row(1, target="Nothing", contexts=["ctx"]),   # no statements: not applicable
            row(2, target="a", contexts=[]),              # no context: not applicable
            row(3, target="ax", contexts=["ctx"], output=None)]
    scores = score(JudgedContextRecall(), rows, ScriptedJudge(reply))
    assert scores[0].value == pytest.approx(2 / 3)
    assert scores[0].justification == "2 of 3 reference statements found in the contexts; missing: 'bx' (r)"
    assert not scores[1].applicable and scores[1].justification == "the reference makes no checkable claim"
    assert not scores[2].applicable and scores[3].value == 0.0


def test_judged_answer_relevancy_is_the_mean_similarity_of_the_generated_questions():
    question, other = "Which lamp is painted red?", "How heavy is lamp 3?"
    replies = {"Lamp 3.": {"questions": [question, other], "noncommittal": 0},
               "Lamp 4.": {"questions": [question], "noncommittal": 0},
               "Perhaps.": {"questions": [question], "noncommittal": 1},
               "Broken.": JudgeError("the judge gave no usable JSON", raw="garbage")}
    judge = ScriptedJudge(lambda messages: replies[messages[1]["content"].removeprefix("Answer: ")])
    rows = [row(0, question, "Lamp 3."), row(1, question, "Lamp 4."), row(2, question, "Perhaps."),
            row(3, question, "Broken."), row(4, question, None)]
    scores = score(JudgedAnswerRelevancy(), rows, judge)
    q, o = embed([question, other])
    assert scores[0].value == pytest.approx((1.0 + float(np.clip(q @ o, 0, 1))) / 2, abs=1e-12)
    assert scores[1].value == pytest.approx(1.0)
    assert scores[2].value == 0.0 and scores[2].justification == "the judge found the answer non-committal"
    assert scores[3].error == "the judge gave no usable JSON" and scores[3].raw == "garbage"
    assert scores[4].error == "no output: the model call failed"
    assert "3 different questions" in judge.asked[0][0]["content"]
    assert "Which lamp" not in judge.asked[0][1]["content"]  # the judge never sees the question


def test_judged_answer_relevancy_reply_validation():
    from evalkit.evaluators.answer_relevancy import _questions

    assert _questions({"questions": [" q ", ""], "noncommittal": 0}) == (["q"], False)
    assert _questions({"questions": [], "noncommittal": 1}) == ([], True)
    with pytest.raises(ValueError, match="at least one question"):
        _questions({"questions": [], "noncommittal": 0})
    with pytest.raises(ValueError, match="noncommittal"):
        _questions({"questions": ["q"], "noncommittal": 2})


@pytest.mark.parametrize("factory, kwargs, message", [
    (AnswerRelevancy, {"method": "guess"}, "answer_relevancy method must be"),
    (AnswerRelevancy, {"method": "judge", "questions": 0}, "questions must be an integer from 1 to 10"),
    (AnswerRelevancy, {"method": "judge", "embeddings": "text-embedding-3-small"}, "embeddings must be 'openai:/"),
    (ContextPrecision, {"method": "x"}, "context_precision method must be"),
    (ContextPrecision, {"threshold": 1.5}, r"threshold must be a number in \[0, 1\)"),
    (ContextRecall, {"method": "x"}, "context_recall method must be"),
])
def test_bad_configuration_is_refused_by_name(factory, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        factory(**kwargs)


def test_auto_picks_the_judge_when_there_is_one_and_the_versions_say_which():
    for factory in (AnswerRelevancy, ContextPrecision, ContextRecall):
        assert factory(judge_available=True).version == "judge-v1"
        assert factory(judge_available=False).version == "offline-v1"


# ---- end to end -------------------------------------------------------------------------------

RAG = pd.DataFrame({
    "inputs": ["Where is lamp 1?", "Where is lamp 2?", "What colour is lamp 3?", "Where is lamp 4?"],
    "contexts": [["Lamp 9 is in aisle 2.", "Lamp 1 is in aisle 4."], ["Lamp 2 is in aisle 7."],
                 ["Lamp 3 is red.", "Lamp 3 costs 40 euros."], []],
    "ground_truth": ["Lamp 1 is in aisle 4.", "Lamp 2 is in aisle 7. Lamp 2 is blue.", "Lamp 3 is red.", "Lamp 4 is in aisle 1."],
})
ANSWERS = {"Where is lamp 1?": "Lamp 1 is in aisle 4.", "Where is lamp 2?": "Lamp 2 is in aisle 7.",
           "What colour is lamp 3?": "I don't know.", "Where is lamp 4?": "Lamp 4 is in aisle 1."}


def test_a_judged_rag_run_scores_every_rag_metric_shares_the_reference_split_and_reports_them():
    from evalkit.reports.model import build_report

    with FakeOpenAIServer(responder=judge_responder) as server:
        judge = f"openai:/gpt-4o-mini?base_url={server.base_url}"
        result = ek.evaluate(model=lambda q: ANSWERS[q], data=RAG, targets="ground_truth", judge=judge,
                             model_type="retrieval-augmented", progress=False, cache="off")
        chat = sum(1 for r in server.stats.request_log if r.path.endswith("/chat/completions"))
    metrics, table = result.metrics, result.tables["eval_results_table"]
    # context precision: [0, 1] -> 0.5; [1] -> 1; [1, 0] -> 1; no context -> not applicable
    assert table["context_precision/score"].tolist()[:3] == [0.5, 1.0, 1.0]
    assert metrics["context_precision/judge-v1/mean"] == pytest.approx(2.5 / 3)
    # context recall: 1/1, 1/2 (blue is not in the passages), 1/1
    assert table["context_recall/score"].tolist()[:3] == [1.0, 0.5, 1.0]
    assert metrics["context_recall/judge-v1/rows_not_applicable"] == 1
    # answer relevancy: "I don't know." is non-committal
    assert table["answer_relevancy/score"][2] == 0.0 and metrics["answer_relevancy/judge-v1/rows_scored"] == 4
    for name in ("answer_relevancy", "context_precision", "context_recall", "faithfulness", "answer_correctness"):
        assert f"{name}/judge-v1/mean" in metrics
    # Identical requests are sent once. Row 0 answers with the reference itself: one split serves
    # faithfulness, answer correctness and context recall, and one verdict request both faithfulness
    # and recall; with the classification, usefulness and questions: 5. Row 1: two splits,
    # classification, two verdict requests, usefulness, questions: 7. Row 2 ("I don't know."): two
    # splits, classification, recall verdicts, usefulness, questions: 6. Row 3 (no context): split,
    # classification, questions: 3.
    assert chat == metrics["judge/calls"] == 5 + 7 + 6 + 3
    html = open(result.artifacts["report"], encoding="utf-8").read()  # the report logged with the run
    for name in ("answer_relevancy", "context_precision", "context_recall"):
        assert f'data-metric="{name}"' in html and f"{name}/judge-v1/mean" in html
    report = build_report(ek.TrackingClient(), result.run_id)
    cards = {card.name: card for card in report.cards}
    assert cards["context_precision"].label == "context_precision/judge-v1/mean"
    assert cards["context_precision"].denominators == {"rows_scored": 3, "rows_failed": 0, "rows_not_applicable": 1}
    assert cards["answer_relevancy"].interval is not None and cards["context_recall"].denominators["rows_scored"] == 3
    record = report.rows[1]
    assert "missing: 'Lamp 2 is blue.'" in record["justifications"]["context_recall"]
    assert '"verdicts"' in record["raw"]["context_precision"]


def test_the_offline_rag_defaults_need_no_judge():
    result = ek.evaluate(predictions="answer", data=RAG.assign(answer=[ANSWERS[q] for q in RAG["inputs"]]),
                         targets="ground_truth", model_type="retrieval-augmented", progress=False, report=False)
    for name in ("answer_relevancy", "context_precision", "context_recall"):
        assert f"{name}/offline-v1/mean" in result.metrics
    assert result.metrics["context_recall/offline-v1/rows_not_applicable"] == 1
    assert result.tables["eval_results_table"]["answer_relevancy/score"][2] == 0.0


def test_rag_defaults_need_the_data_they_use_and_suite_gates_find_their_metrics():
    assert {"answer_relevancy", "context_precision", "context_recall"} <= set(DEFAULTS["retrieval-augmented"])
    without_targets = resolve_evaluators("default", "retrieval-augmented", None, None, {"contexts", "judge"})
    assert "answer_relevancy" in {e.name for e in without_targets}
    assert not {"context_precision", "context_recall"} & {e.name for e in without_targets}
    chosen = resolve_evaluators("default", "retrieval-augmented", None, None, {"contexts", "targets", "judge"})
    names, _ = expected_metrics(chosen)
    assert {"answer_relevancy/judge-v1/mean", "context_precision/judge-v1/rows_scored", "context_recall/judge-v1/mean"} <= names
    with pytest.raises(InvalidArgument, match="evaluator 'context_recall' needs targets"):
        resolve_evaluators(None, "retrieval-augmented", ["context_recall"], None, {"contexts"})
