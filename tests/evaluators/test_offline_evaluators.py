"""The offline evaluators' formulas on hand-made rows, against values computed by hand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from evalkit.evaluators.answer_correctness_offline import OfflineAnswerCorrectness
from evalkit.evaluators.embeddings import similarity
from evalkit.evaluators.exact_match import ExactMatch
from evalkit.evaluators.faithfulness_offline import OfflineFaithfulness
from evalkit.evaluators.text import content_tokens, normalize_answer, token_f1, tokens
from evalkit.evaluators.token_f1 import TokenF1

from evalkit.evaluation.registry import create_evaluator
from evalkit.evaluation.scoring import EvalRow, Evaluator, Score, ScoringContext

REPO = Path(__file__).resolve().parents[2]


def row(output: str | None, target: str | None = None, contexts: list[str] | None = None, index: int = 0) -> EvalRow:
    return EvalRow(index, "question", output, target, contexts or [])


def score(evaluator: Evaluator, rows: list[EvalRow]) -> list[Score]:
    return asyncio.run(evaluator.score(rows, ScoringContext()))


# ---- text helpers ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  An   apple, a day. ", "apple day"),
        ("theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("Don't STOP", "dont stop"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected
    assert tokens(text) == expected.split()


def test_content_tokens_drop_stopwords():
    assert content_tokens("The cat is on the mat, isn't it?") == ["cat", "mat"]
    assert content_tokens("I don't know.") == []


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("the cat sat on the mat", "a cat sat on a mat", (1.0, 1.0, 1.0)),
        ("Paris France", "Paris", (1 / 2, 1.0, 2 / 3)),
        # multiset overlap: "red" counts once because the reference has it once
        ("red red blue", "red green", (1 / 3, 1 / 2, 2 / 5)),
        ("cat", "dog", (0.0, 0.0, 0.0)),
        ("", "", (1.0, 1.0, 1.0)),
        ("The", "a", (1.0, 1.0, 1.0)),  # both empty once articles go
        ("", "Paris", (0.0, 0.0, 0.0)),
        ("Paris", "", (0.0, 0.0, 0.0)),
    ],
)
def test_token_f1(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected, abs=1e-12)


# ---- exact_match and token_f1 ------------------------------------------------------------------

def test_exact_match_takes_the_context_argument():
    scores = score(ExactMatch(), [row("The Paris.", "paris"), row("Lyon", "Paris"), row(None, "Paris")])
    assert [s.value for s in scores] == [1.0, 0.0, None]
    assert asyncio.run(ExactMatch().score([row("x", "x")]))[0].value == 1.0  # context defaults to None


def test_token_f1_scores_and_aggregate_with_denominators():
    evaluator = create_evaluator("token_f1")
    assert isinstance(evaluator, TokenF1)
    scores = score(evaluator, [
        row("Paris France", "Paris"),
        row("the cat sat", "cat sat"),
        row(None, "Paris"),
        row("Paris", None),
    ])
    assert scores[0].value == pytest.approx(2 / 3)
    assert scores[0].justification == "token precision 0.500, recall 1.000"
    assert scores[1].value == 1.0
    assert scores[2].error == "no output: the model call failed"
    assert not scores[3].applicable
    assert evaluator.aggregate(scores) == pytest.approx({
        "rows_scored": 2.0, "rows_failed": 1.0, "rows_not_applicable": 1.0, "mean": (2 / 3 + 1) / 2,
    })


# ---- faithfulness (K-Precision) ----------------------------------------------------------------

def test_k_precision_three_of_four_content_tokens_supported():
    contexts = ["Marie Curie discovered polonium.", "She also isolated radium."]
    # content tokens: curie, discovered, radium, paris; "paris" is in no context
    [result] = score(OfflineFaithfulness(), [row("Curie discovered radium in Paris.", contexts=contexts)])
    assert result.value == 0.75
    assert result.justification == "3 of 4 content tokens appear in the context; unsupported: paris"


def test_k_precision_counts_repeated_tokens():
    [result] = score(OfflineFaithfulness(), [row("Radium, radium and gold.", contexts=["radium"])])
    assert result.value == pytest.approx(2 / 3)
    assert result.justification.endswith("unsupported: gold")


def test_k_precision_lists_at_most_ten_unsupported_tokens():
    answer = " ".join(f"word{i}" for i in range(12)) + " word0"
    [result] = score(OfflineFaithfulness(), [row(answer, contexts=["nothing relevant"])])
    assert result.value == 0.0
    assert result.justification.endswith("unsupported: " + ", ".join(f"word{i}" for i in range(10)))


def test_faithfulness_not_applicable_and_failed_rows():
    evaluator = OfflineFaithfulness()
    assert (evaluator.name, evaluator.version, evaluator.requires) == ("faithfulness", "kprecision-v1", ("contexts",))
    scores = score(evaluator, [
        row("Curie discovered radium.", contexts=[]),
        row("Curie discovered radium.", contexts=["", "  "]),
        row("I don't know.", contexts=["Marie Curie discovered radium."]),
        row(None, contexts=["Marie Curie discovered radium."]),
        row("Curie discovered radium.", contexts=["Marie Curie discovered radium."]),
    ])
    assert [s.applicable for s in scores] == [False, False, False, True, True]
    assert scores[0].justification == "the row has no retrieved context"
    assert scores[2].justification == "the answer makes no checkable claim"
    assert scores[3].error == "no output: the model call failed"
    assert scores[4].value == 1.0 and scores[4].justification == "3 of 3 content tokens appear in the context"
    assert evaluator.aggregate(scores) == {
        "rows_scored": 1.0, "rows_failed": 1.0, "rows_not_applicable": 3.0, "mean": 1.0,
    }


# ---- answer correctness (token F1 + embedding similarity) --------------------------------------

def test_answer_correctness_blends_f1_and_similarity():
    evaluator = OfflineAnswerCorrectness()
    assert (evaluator.name, evaluator.version, evaluator.requires) == ("answer_correctness", "f1sim-v1", ("targets",))
    rows = [
        row("The capital is Paris.", "The capital is Paris."),
        row("Paris", "London"),
        row("Paris is the capital of France", "Paris"),
        row(None, "Paris"),
        row("Paris", None),
    ]
    identical, disjoint, partial, failed, no_target = score(evaluator, rows)
    assert identical.value == pytest.approx(1.0, abs=1e-9)
    assert identical.justification == "token F1 1.000, semantic similarity 1.000"

    disjoint_sim = float(similarity(["Paris"], ["London"])[0])
    assert 0.0 <= disjoint_sim < 1.0
    assert disjoint.value == pytest.approx(0.25 * disjoint_sim, abs=1e-12)
    assert disjoint.justification.startswith("token F1 0.000, ")

    # tokens [paris, is, capital, of, france] against [paris]: P = 1/5, R = 1, F1 = 1/3
    partial_sim = float(similarity(["Paris is the capital of France"], ["Paris"])[0])
    assert partial.value == pytest.approx(0.75 * (1 / 3) + 0.25 * partial_sim, abs=1e-12)
    assert partial.justification == f"token F1 0.333, semantic similarity {partial_sim:.3f}"

    assert failed.error == "no output: the model call failed"
    assert not no_target.applicable
    aggregate = evaluator.aggregate([identical, disjoint, partial, failed, no_target])
    assert (aggregate["rows_scored"], aggregate["rows_failed"], aggregate["rows_not_applicable"]) == (3.0, 1.0, 1.0)
    assert aggregate["mean"] == pytest.approx((identical.value + disjoint.value + partial.value) / 3)


def test_similarity_is_row_wise_and_clipped():
    values = similarity(["Paris", "", "a cat"], ["Paris", "Paris", "a cat"])
    assert values.shape == (3,)
    assert values[0] == pytest.approx(1.0) and values[2] == pytest.approx(1.0)
    assert values[1] == 0.0  # an empty text embeds to zero: no similarity
    assert ((values >= 0) & (values <= 1)).all()


def test_wordllama_loads_with_no_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    # A fresh HOME: no ~/.cache/wordllama to fall back on, so the model must come from the wheel.
    env |= {"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    program = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network use in an offline test")

        socket.socket.connect = refuse
        socket.create_connection = refuse

        from evalkit.evaluators.embeddings import similarity

        values = similarity(["Paris is in France"], ["Paris is a French city"])
        assert values.shape == (1,) and 0.0 < values[0] <= 1.0, values
        print("embedded", float(values[0]))
    """)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("embedded")
    assert not (tmp_path / ".cache").exists()
