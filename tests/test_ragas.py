"""The ragas adapter (``ragas:<metric>``), and parity: evalkit's judged faithfulness and
answer_correctness score exactly like ragas's when the judge decides the same.

One fake judge (``bench/judged_responder.py``) answers evalkit's prompts and ragas's from the same
rule, so both tools see the same statements, verdicts and TP/FP/FN sorting; embeddings come from
the same endpoint, so both see the same cosine.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import InvalidArgument
from evalkit.testing.fake_openai import FakeOpenAIServer, embed_text
from evaluators.ragas_adapter import RagasMetric
from reports.model import build_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from judged_responder import responder  # noqa: E402

pytest.importorskip("ragas")
import ragas._analytics  # noqa: E402

PREFIX = f"ragas/{{}}/ragas-{ragas.__version__}"

# (question, contexts, answer, ground truth, faithfulness, (TP, FP, FN)) under the fake judge's
# rule: one statement per sentence; a statement is supported / matches when 80% of its content
# words appear in the passages / in one reference statement.
ROWS = [
    ("What is the capital of France?", ["Paris is the capital of France.", "France is in Western Europe."],
     "Paris is the capital of France. France is in Western Europe.",
     "Paris is the capital of France. France is in Western Europe.", 1.0, (2, 0, 0)),
    ("Where is the Eiffel Tower and how tall is it?",
     ["The Eiffel Tower is in Paris.", "The Eiffel Tower is 330 metres tall."],
     "The Eiffel Tower is in Paris. The Eiffel Tower is 330 metres tall. The Eiffel Tower was built in 1850.",
     "The Eiffel Tower is in Paris. The Eiffel Tower was completed in 1889.", 2 / 3, (1, 2, 1)),
    ("What is the Moon made of?", ["The Moon orbits the Earth every 27 days."],
     "The Moon is made of cheese. Astronauts found cheddar there.",
     "The Moon is made of rock. The Moon has no atmosphere.", 0.0, (0, 2, 2)),
    ("Tell me about the Amazon river.",
     ["The Amazon river flows through Brazil.", "The Amazon river ends in the Atlantic Ocean.",
      "The Amazon river has many fish."],
     ("The Amazon river flows through Brazil. The Amazon river ends in the Atlantic Ocean. "
      "The Amazon river has many fish. The Amazon river is very long."),
     ("The Amazon river flows through Brazil. The Amazon river ends in the Atlantic Ocean. The Amazon river has "
      "many fish. The Amazon river is very long. The Amazon river carries more water than any other river."),
     3 / 4, (4, 0, 1)),
    ("What do bees make?", ["Bees make honey in hives."], "Bees make honey.",
     "Bees make honey. Bees make wax. Bees pollinate flowers.", 1.0, (1, 0, 2)),
    ("Who was Marie Curie?", ["Marie Curie was born in Warsaw in 1867.", "Curie won Nobel prizes in physics and chemistry."],
     "Marie Curie was born in Warsaw. Marie Curie discovered radium. Marie Curie lived in Berlin.",
     "Marie Curie was born in Warsaw. Marie Curie discovered radium and polonium. Marie Curie won two Nobel prizes.",
     1 / 3, (2, 1, 1)),
    ("Where is Mount Everest?", ["Mount Everest is on the border of Nepal and China."],
     "Mount Everest is in Nepal. Mount Everest is the tallest mountain.", "Mount Everest is in Nepal.",
     1 / 2, (1, 1, 0)),
]


@pytest.fixture(autouse=True)
def _ragas_user_dir(tmp_path, monkeypatch) -> None:
    # ragas writes <user data dir>/ragas/uuid.json on its first usage event, even with tracking off.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame({"question": [r[0] for r in rows], "contexts": [r[1] for r in rows],
                         "answer": [r[2] for r in rows], "ground_truth": [r[3] for r in rows]})


def cosine(a: str, b: str) -> float:
    # The fake server's embeddings, as the openai client receives them (float32).
    x, y = (np.asarray(embed_text(t), dtype=np.float32).astype(np.float64) for t in (a, b))
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def f1(tp: int, fp: int, fn: int) -> float:
    return tp / (tp + 0.5 * (fp + fn)) if tp else 0.0


def evaluate(server: FakeOpenAIServer, data: pd.DataFrame, evaluators: list[str], **kwargs) -> ek.EvaluationResult:
    config = {"answer_correctness": {"embeddings": f"openai:/text-embedding-3-small?base_url={server.base_url}"},
              "ragas:answer_correctness": {"embeddings": "text-embedding-3-small"}}
    return ek.evaluate(data=data, predictions="answer", targets="ground_truth", progress=False,
                       judge=f"openai:/gpt-4o-mini?base_url={server.base_url}", evaluators=evaluators,
                       evaluator_config={k: v for k, v in config.items() if k in evaluators}, **kwargs)


def test_evalkit_and_ragas_give_the_same_scores_on_the_same_judgements():
    with FakeOpenAIServer(responder=responder) as server:
        result = evaluate(server, frame(ROWS), ["faithfulness", "answer_correctness",
                                                "ragas:faithfulness", "ragas:answer_correctness"])
    table, metrics = result.tables["eval_results_table"], result.metrics
    for i, (_, _, answer, truth, faithfulness, counts) in enumerate(ROWS):
        similarity = cosine(answer, truth)
        assert similarity > 0  # evalkit clips the similarity to [0, 1], ragas does not
        assert table["faithfulness/score"][i] == pytest.approx(faithfulness, abs=1e-9)
        assert table["ragas:faithfulness/score"][i] == pytest.approx(faithfulness, abs=1e-9)
        correctness = 0.75 * f1(*counts) + 0.25 * similarity
        assert table["answer_correctness/score"][i] == pytest.approx(correctness, abs=1e-6)
        assert table["ragas:answer_correctness/score"][i] == pytest.approx(correctness, abs=1e-6)
        assert table["answer_correctness/score"][i] == pytest.approx(table["ragas:answer_correctness/score"][i], abs=1e-6)
    for name in ("faithfulness", "answer_correctness"):
        ragas_prefix = PREFIX.format(name)
        assert metrics[f"{ragas_prefix}/rows_scored"] == len(ROWS) == metrics[f"{name}/judge-v1/rows_scored"]
        assert metrics[f"{ragas_prefix}/mean"] == pytest.approx(metrics[f"{name}/judge-v1/mean"], abs=1e-6)
        # ragas's own judge calls, priced from the responses' usage; evalkit's cost evaluator never sees them
        assert metrics[f"{ragas_prefix}/judge_usd"] > 0 and metrics[f"{ragas_prefix}/judge_unpriced_calls"] == 0
    # The report reads each evaluator's own metric prefix (it once showed 0 rows scored for ragas:*).
    cards = {card.name: card for card in build_report(ek.TrackingClient(), result.run_id).cards}
    for name in ("ragas:faithfulness", "ragas:answer_correctness"):
        assert cards[name].label == PREFIX.format(name.partition(":")[2]) + "/mean"
        assert cards[name].denominators == {"rows_scored": len(ROWS), "rows_failed": 0, "rows_not_applicable": 0}


def test_an_answer_without_statements_is_where_the_two_differ():
    """Known differences, on an answer that claims nothing ("I don't know."): faithfulness is not
    applicable on both sides (ragas returns NaN, which the adapter reports as not applicable); for
    answer_correctness ragas skips the classification and takes the factuality as 1.0 when either
    side has no statements, evalkit scores the F1 of TP 0, FP 0, FN n as 0 (and clips the
    similarity to [0, 1] where ragas keeps a negative cosine)."""
    row = ("What is the capital of France?", ["Paris is the capital of France."], "I don't know.",
           "Paris is the capital of France.")
    with FakeOpenAIServer(responder=responder) as server:
        result = evaluate(server, frame([row]), ["faithfulness", "answer_correctness",
                                                 "ragas:faithfulness", "ragas:answer_correctness"])
    table, metrics = result.tables["eval_results_table"], result.metrics
    assert pd.isna(table["faithfulness/score"][0]) and pd.isna(table["ragas:faithfulness/score"][0])
    assert table["ragas:faithfulness/justification"][0] == "ragas returned NaN (e.g. the answer has no statements)"
    assert metrics[PREFIX.format("faithfulness") + "/rows_not_applicable"] == 1
    similarity = cosine(row[2], row[3])
    assert table["answer_correctness/score"][0] == pytest.approx(0.25 * min(max(similarity, 0.0), 1.0), abs=1e-6)
    assert table["ragas:answer_correctness/score"][0] == pytest.approx(0.75 + 0.25 * similarity, abs=1e-6)


def test_the_other_ragas_metrics_run_too():
    rows = [("Where is the Eiffel Tower?", ["The Louvre is a museum.", "The Eiffel Tower is in Paris."],
             "The Eiffel Tower is in Paris.", "The Eiffel Tower is in Paris."),
            ("Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris.", "The Louvre is a museum."],
             "I don't know.", "The Eiffel Tower is in Paris.")]
    with FakeOpenAIServer(responder=responder) as server:
        result = evaluate(server, frame(rows), ["ragas:answer_relevancy", "ragas:context_precision"])
    table = result.tables["eval_results_table"]
    # context precision: the useful context second, then first (average precision 1/2, then 1)
    assert table["ragas:context_precision/score"].tolist() == pytest.approx([0.5, 1.0])
    # answer relevancy: the fake judge asks back the answer's first statement; a non-answer scores 0
    assert table["ragas:answer_relevancy/score"].tolist() == pytest.approx([cosine(rows[0][0], rows[0][2]), 0.0], abs=1e-6)


def test_unknown_ragas_metric_lists_the_supported_ones():
    with pytest.raises(InvalidArgument, match="unknown ragas metric 'recall'; supported: faithfulness, "
                                              "answer_correctness, answer_relevancy, context_precision"):
        ek.evaluate(data=frame(ROWS[:1]), predictions="answer", evaluators=["ragas:recall"],
                    judge="openai:/gpt-4o-mini?base_url=http://127.0.0.1:9/v1", progress=False)


def test_without_ragas_the_error_says_how_to_install_it(monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(InvalidArgument, match=r"ragas, which is not installed: pip install 'evalkit\[ragas\]'"):
        RagasMetric("faithfulness")


def test_a_judge_answering_garbage_fails_the_rows_and_counts_them():
    with FakeOpenAIServer(responder=lambda body: "I would rather not say.") as server:
        result = evaluate(server, frame(ROWS[:2]), ["ragas:faithfulness", "ragas:answer_correctness"])
    table, metrics = result.tables["eval_results_table"], result.metrics
    for name in ("faithfulness", "answer_correctness"):
        assert table[f"ragas:{name}/score"].isna().all()
        assert all(j.startswith("ragas: InstructorRetryException: ") for j in table[f"ragas:{name}/justification"])
        prefix = PREFIX.format(name)
        assert metrics[f"{prefix}/rows_failed"] == 2 and metrics[f"{prefix}/rows_scored"] == 0
        assert f"{prefix}/mean" not in metrics and metrics[f"{prefix}/judge_usd"] > 0  # failed calls are paid for too


def test_a_row_whose_model_call_failed_is_an_error_and_the_others_score():
    answers = {r[0]: r[2] for r in ROWS[:2]}

    def model(question: str) -> str:
        if question == ROWS[1][0]:
            raise RuntimeError("model down")
        return answers[question]

    with FakeOpenAIServer(responder=responder) as server:
        result = ek.evaluate(model=model, data=frame(ROWS[:2]).drop(columns="answer"), evaluators=["ragas:faithfulness"],
                             judge=f"openai:/gpt-4o-mini?base_url={server.base_url}", max_attempts=1, progress=False)
    table = result.tables["eval_results_table"]
    assert table["ragas:faithfulness/score"][0] == 1.0
    assert table["ragas:faithfulness/justification"][1] == "no output: the model call failed"
    assert result.metrics[PREFIX.format("faithfulness") + "/rows_failed"] == 1


@pytest.fixture
def tracking_posts(monkeypatch) -> list[tuple]:
    """Every request ragas's usage tracking attempts (none reaches the network), with ragas's
    cached "do not track" decision forgotten before and after the test."""
    posts: list[tuple] = []
    monkeypatch.setattr(ragas._analytics.requests, "post", lambda *args, **kwargs: posts.append((args, kwargs)))
    ragas._analytics.do_not_track.cache_clear()
    yield posts
    ragas._analytics.do_not_track.cache_clear()


def test_ragas_usage_tracking_is_off_unless_the_user_turned_it_on(tracking_posts, monkeypatch):
    monkeypatch.delenv("RAGAS_DO_NOT_TRACK", raising=False)
    with FakeOpenAIServer(responder=responder) as server:
        evaluate(server, frame(ROWS[:1]), ["ragas:faithfulness"])
        assert os.environ["RAGAS_DO_NOT_TRACK"] == "true" and tracking_posts == []
        # The control: a user's own choice is kept, and then ragas's tracking does post.
        monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "false")
        ragas._analytics.do_not_track.cache_clear()
        evaluate(server, frame(ROWS[:1]), ["ragas:faithfulness"])
    assert os.environ["RAGAS_DO_NOT_TRACK"] == "false" and tracking_posts
