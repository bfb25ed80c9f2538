"""The ragas adapter (``ragas:<metric>``), and parity: evalkit's judged faithfulness,
answer_correctness, answer_relevancy, context_precision and context_recall score exactly like
ragas 0.4.3's when the judge decides the same.

One fake judge (``bench/judged_responder.py``) answers evalkit's prompts and ragas's from the same
rule, so both tools see the same statements, verdicts, TP/FP/FN sorting, generated questions and
usefulness verdicts; embeddings come from the same endpoint, so both see the same cosine. ragas's
formulas run in ragas's own code: the adapter only hands it evalkit's judge and embeddings.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evalkit.evaluators.ragas_adapter import RagasMetric
from evalkit.reports.model import build_report

import evalkit as ek
from evalkit.errors import InvalidArgument
from evalkit.testing.fake_openai import FakeOpenAIServer, embed_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from judged_responder import responder  # noqa: E402

pytest.importorskip("ragas")
import ragas._analytics  # noqa: E402

PREFIX = f"ragas/{{}}/ragas-{ragas.__version__}"
assert ragas.__version__ == "0.4.3"  # the version parity is asserted against

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
    embeddings = {"embeddings": f"openai:/text-embedding-3-small?base_url={server.base_url}"}
    config = {name: embeddings for name in ("answer_correctness", "ragas:answer_correctness", "answer_relevancy",
                                            "ragas:answer_relevancy")}
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
        assert table["ragas/faithfulness/score"][i] == pytest.approx(faithfulness, abs=1e-9)
        correctness = 0.75 * f1(*counts) + 0.25 * similarity
        assert table["answer_correctness/score"][i] == pytest.approx(correctness, abs=1e-6)
        assert table["ragas/answer_correctness/score"][i] == pytest.approx(correctness, abs=1e-6)
        assert table["answer_correctness/score"][i] == pytest.approx(table["ragas/answer_correctness/score"][i], abs=1e-6)
    for name in ("faithfulness", "answer_correctness"):
        ragas_prefix = PREFIX.format(name)
        assert metrics[f"{ragas_prefix}/rows_scored"] == len(ROWS) == metrics[f"{name}/judge-v1/rows_scored"]
        assert metrics[f"{ragas_prefix}/mean"] == pytest.approx(metrics[f"{name}/judge-v1/mean"], abs=1e-6)


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
    assert pd.isna(table["faithfulness/score"][0]) and pd.isna(table["ragas/faithfulness/score"][0])
    assert table["ragas/faithfulness/justification"][0] == "ragas returned NaN (e.g. the answer or reference has no statements)"
    assert metrics[PREFIX.format("faithfulness") + "/rows_not_applicable"] == 1
    similarity = cosine(row[2], row[3])
    assert table["answer_correctness/score"][0] == pytest.approx(0.25 * min(max(similarity, 0.0), 1.0), abs=1e-6)
    assert table["ragas/answer_correctness/score"][0] == pytest.approx(0.75 + 0.25 * similarity, abs=1e-6)


# (question, contexts, answer, reference) for the RAG metrics' parity, covering: a useful context
# ranked second, the same contexts reversed, one context, no useful context, a non-committal
# answer, a reference with no statements, and a reference only partly in the contexts.
RAG_ROWS = [
    ("Where is the Eiffel Tower?", ["The Louvre is a museum.", "The Eiffel Tower is in Paris."],
     "The Eiffel Tower is in Paris.", "The Eiffel Tower is in Paris."),
    ("Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris.", "The Louvre is a museum."],
     "The Eiffel Tower stands in Paris. The Eiffel Tower is made of iron.", "The Eiffel Tower is in Paris."),
    ("What do bees make?", ["Bees make honey in hives."], "Bees make honey.", "Bees make honey. Bees make wax."),
    ("What is the Moon made of?", ["The Moon orbits the Earth every 27 days.", "Mars is red."],
     "The Moon is made of rock.", "The Moon is made of rock."),
    ("Who was Marie Curie?", ["Marie Curie was born in Warsaw.", "Curie won Nobel prizes in physics.",
                              "Marie Curie discovered radium."],
     "I don't know.", "Marie Curie was born in Warsaw. Marie Curie discovered radium. Marie Curie lived in Berlin."),
    ("Where is Mount Everest?", ["Mount Everest is on the border of Nepal and China."],
     "Mount Everest is in Nepal.", "I don't know."),
]
# Under the fake judge's rule, by hand: usefulness verdicts per context, and recall (None: no statements)
RAG_EXPECTED = [([0, 1], 1.0), ([1, 0], 1.0), ([1], 0.5), ([0, 0], 0.0), ([1, 0, 1], 2 / 3), ([0], None)]


def test_evalkit_and_ragas_rag_metrics_agree_on_the_same_judgements():
    native = ["answer_relevancy", "context_precision", "context_recall"]
    with FakeOpenAIServer(responder=responder) as server:
        result = evaluate(server, frame(RAG_ROWS), native + [f"ragas:{name}" for name in native])
    table, metrics = result.tables["eval_results_table"], result.metrics
    for i, ((question, _, answer, _), (verdicts, recall)) in enumerate(zip(RAG_ROWS, RAG_EXPECTED, strict=True)):
        useful = [1 if v else 0 for v in verdicts]
        precision = sum(sum(useful[:k + 1]) / (k + 1) * v for k, v in enumerate(useful)) / sum(useful) if any(useful) else 0.0
        assert table["context_precision/score"][i] == pytest.approx(precision, abs=1e-15)
        # ragas adds 1e-10 to the average precision's denominator
        assert table["ragas/context_precision/score"][i] == pytest.approx(precision, abs=1e-9)
        if recall is None:  # ragas NaN, evalkit not applicable
            assert table["context_recall/status"][i] == table["ragas/context_recall/status"][i] == "not_applicable"
        else:
            assert table["context_recall/score"][i] == table["ragas/context_recall/score"][i] == pytest.approx(recall)
        # the fake judge asks back the answer's first statement; a non-committal answer scores 0
        relevancy = 0.0 if answer == "I don't know." else cosine(question, answer.split(". ")[0].rstrip(".") + ".")
        assert relevancy >= 0  # evalkit clips each cosine to [0, 1], ragas does not
        assert table["answer_relevancy/score"][i] == pytest.approx(relevancy, abs=1e-6)
        assert table["ragas/answer_relevancy/score"][i] == pytest.approx(relevancy, abs=1e-6)
    for name in native:
        ragas_prefix = PREFIX.format(name)
        for key in ("rows_scored", "rows_failed", "rows_not_applicable"):
            assert metrics[f"{ragas_prefix}/{key}"] == metrics[f"{name}/judge-v1/{key}"]
        assert metrics[f"{ragas_prefix}/mean"] == pytest.approx(metrics[f"{name}/judge-v1/mean"], abs=1e-6)
    # one naming scheme: the table's ragas/<metric>/score is behind the run's ragas/<metric>/<version>/*,
    # so the report's card finds its denominators

    cards = {card.name: card for card in build_report(ek.TrackingClient(), result.run_id).cards}
    assert cards["ragas/context_recall"].label == PREFIX.format("context_recall") + "/mean"
    assert cards["ragas/context_recall"].denominators == {"rows_scored": 5, "rows_failed": 0, "rows_not_applicable": 1}


def test_how_many_requests_each_side_makes():
    """By design: evalkit judges a row's contexts in one request (ragas: one per context) and
    writes the generated questions in one request (ragas: one per question, strictness 3); its
    context recall takes two (the reference split, shared with answer correctness, then verdicts),
    where ragas splits and verifies in one. Run through evalkit, ragas's identical requests are
    sent once: its three identical question requests per row, and the same context asked twice."""
    def count(evaluators: list[str]) -> int:
        with FakeOpenAIServer(responder=responder) as server:
            evaluate(server, frame(RAG_ROWS), evaluators, cache="off")
            return sum(1 for r in server.stats.request_log if r.path.endswith("/chat/completions"))

    rows, contexts = len(RAG_ROWS), sum(len(r[1]) for r in RAG_ROWS)
    # rows 0 and 1 share their question and reference: one split; the last reference has no statements
    assert count(["context_recall"]) == (rows - 1) + (rows - 1)
    assert count(["context_precision"]) == count(["answer_relevancy"]) == rows
    # with answer correctness, the reference split is shared: recall adds only its verdicts
    assert count(["answer_correctness", "context_recall"]) - count(["answer_correctness"]) == rows - 1
    # ragas through evalkit: rows 0 and 1 ask about the same two contexts, and the question requests
    # of a row are identical
    assert count(["ragas:context_precision"]) == contexts - 2
    assert count(["ragas:answer_relevancy"]) == count(["ragas:context_recall"]) == rows
    ragas_alone = 3 * rows + contexts + rows  # what ragas sends by itself (bench/bench_rag.py measures it)
    assert count(["answer_relevancy", "context_precision", "context_recall"]) == 22 < ragas_alone == 35


def test_unknown_ragas_metric_lists_the_supported_ones():
    with pytest.raises(InvalidArgument, match="unknown ragas metric 'recall'; supported: faithfulness, "
                                              "answer_correctness, answer_relevancy, context_precision, context_recall"):
        ek.evaluate(data=frame(ROWS[:1]), predictions="answer", evaluators=["ragas:recall"],
                    judge="openai:/gpt-4o-mini?base_url=http://127.0.0.1:9/v1", progress=False)


def test_without_ragas_the_error_says_how_to_install_it(monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(InvalidArgument, match=r"ragas, which is not installed: pip install 'evalkit\[ragas\]'"):
        RagasMetric("faithfulness")


def test_a_judge_answering_garbage_stops_the_run_and_keeps_its_replies():
    with FakeOpenAIServer(responder=lambda body: "I would rather not say.") as server:
        with pytest.raises(ek.EvaluationFailed, match="the judge could not score any of the first 2 answered rows") as info:
            evaluate(server, frame(ROWS[:2]), ["ragas:faithfulness", "ragas:answer_correctness"])
    table = ek.TrackingClient().load_table(info.value.run_id, "eval_results_table.parquet")
    metrics = ek.get_run(info.value.run_id).data.metrics
    for name in ("faithfulness", "answer_correctness"):
        assert table[f"ragas/{name}/score"].isna().all()
        # evalkit's judge re-asked twice with the reason, then gave up: the row's error, raw replies kept
        assert all(j.startswith("the judge gave no usable JSON in 3 tries") for j in table[f"ragas/{name}/justification"])
        assert all(r.count("I would rather not say.") == 3 for r in table[f"ragas/{name}/raw"])
        prefix = PREFIX.format(name)
        assert metrics[f"{prefix}/rows_failed"] == 2 and metrics[f"{prefix}/rows_scored"] == 0
        assert f"{prefix}/mean" not in metrics


def test_ragas_calls_go_through_evalkits_judge_cache_cost_and_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    answers = {r[0]: r[2] for r in ROWS}
    data = frame(ROWS).drop(columns="answer")
    names = ["ragas:faithfulness", "ragas:context_recall", "cost"]
    with FakeOpenAIServer(responder=responder) as server:
        judge = f"openai:/gpt-4o-mini?base_url={server.base_url}"
        first = ek.evaluate(model=lambda q: answers[q], data=data, targets="ground_truth", judge=judge, evaluators=names,
                            progress=False)
        sent = server.stats.requests
        again = ek.evaluate(model=lambda q: answers[q], data=data, targets="ground_truth", judge=judge, evaluators=names,
                            progress=False)
        assert server.stats.requests == sent  # every ragas call of the second run came from evalkit's cache
        budget = 0.5 * first.metrics["cost/judge_usd"]
        capped = ek.evaluate(predictions="answer", data=frame(ROWS), targets="ground_truth", judge=judge,
                             evaluators=names[:2], progress=False, cache="off", max_cost_usd=budget)
    assert first.metrics["judge/calls"] == sent > 0 and first.metrics["judge/cache_hits"] == 0
    assert again.metrics["judge/cache_hits"] == again.metrics["judge/calls"] == sent
    # ragas's calls are priced and billed per row like evalkit's own judge's
    assert first.metrics["cost/judge_usd"] > 0 and first.metrics["cost/unpriced_rows"] == len(ROWS)  # the model is a function
    table = first.tables["eval_results_table"]
    assert (table["ragas/faithfulness/score"] == [r[4] for r in ROWS]).all()
    assert '"statements"' in table["ragas/faithfulness/raw"][0]  # the judge's raw replies, for audit
    # with half the budget, the judge stops sending; the rows it could not judge are counted as failed
    failed = sum(capped.metrics[PREFIX.format(name) + "/rows_failed"] for name in ("faithfulness", "context_recall"))
    assert failed > 0 and capped.metrics["judge/calls"] < sent
    errors = capped.tables["eval_results_table"]["ragas/faithfulness/justification"].dropna()
    assert any(f"the run stopped at max_cost_usd={budget}" in e for e in errors)


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
    assert table["ragas/faithfulness/score"][0] == 1.0
    assert table["ragas/faithfulness/justification"][1] == "no output: the model call failed"
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
        evaluate(server, frame(ROWS[:1]), ["ragas:faithfulness", "ragas:answer_correctness"])
        assert os.environ["RAGAS_DO_NOT_TRACK"] == "true" and tracking_posts == []
        # A user's own choice is kept. ragas posts its usage events from its own LLM and embeddings
        # classes, which the adapter replaces with evalkit's, so even then nothing is posted ...
        monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "false")
        ragas._analytics.do_not_track.cache_clear()
        evaluate(server, frame(ROWS[1:2]), ["ragas:faithfulness", "ragas:answer_correctness"])
        assert os.environ["RAGAS_DO_NOT_TRACK"] == "false" and tracking_posts == []
        # ... while ragas's own LLM would (the control: the patched post does see ragas's events).
        import openai
        from ragas.llms import llm_factory

        llm_factory("gpt-4o-mini", client=openai.AsyncOpenAI(api_key="sk-test", base_url=server.base_url))
    assert tracking_posts
