from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest

from evalkit.errors import PermanentModelError
from evalkit.evaluation.data import load_dataset
from evalkit.evaluation.prompts import resolve_prompt
from evalkit.inference.providers.base import ChatModel
from evalkit.inference.providers.offline import (
    OfflineExtractiveModel,
    parse_prompt,
    split_sentences,
)

RAG_QA = Path(__file__).resolve().parents[2] / "datasets" / "rag_qa.jsonl"
UNKNOWN = "I don't know."

PASSAGES = [
    "The Fenn desk lamp uses a 12 W LED module rated at 800 lumens. The arm reaches 52 cm.",
    "Items can be returned within 45 days of delivery. Refunds take 7 business days.",
    "Firmware 5.1 was released on 14 February 2024. It introduced Daylight Sync.",
]


def ask(question: str, passages: list[str]) -> str:
    messages = resolve_prompt(None, has_contexts=bool(passages)).render(question, passages, {})
    return asyncio.run(OfflineExtractiveModel().generate(messages, {})).text


def test_is_a_chat_model():
    model = OfflineExtractiveModel()
    assert isinstance(model, ChatModel)
    assert model.uri == "evalkit:/extractive" and model.base_url is None
    asyncio.run(model.aclose())


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("How many lumens does the Fenn produce?", PASSAGES[0].split(". ")[0] + "."),
        ("How far does the arm reach?", "The arm reaches 52 cm."),
        ("Within how many days can items be returned?", "Items can be returned within 45 days of delivery."),
        ("How long do refunds take?", "Refunds take 7 business days."),
        ("When was firmware 5.1 released?", "Firmware 5.1 was released on 14 February 2024."),
        ("Which feature did it introduce?", "It introduced Daylight Sync."),
    ],
)
def test_answers_with_the_best_sentence(question, answer):
    assert ask(question, PASSAGES) == answer


def test_says_it_does_not_know_when_nothing_matches():
    assert ask("Who is the chief executive?", PASSAGES) == UNKNOWN
    assert ask("How bright is the Fenn?", []) == UNKNOWN  # QA prompt: no passages at all
    assert ask("What is the?", PASSAGES) == UNKNOWN  # only stopwords


def test_ties_go_to_the_earlier_passage():
    assert ask("What colour is the lamp?", ["The lamp is red.", "The lamp is blue."]) == "The lamp is red."


def test_usage_counts_words_and_is_marked_estimated():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Context:\n[1] The sky is blue.\n\nQuestion: What colour is the sky?"},
    ]
    response = asyncio.run(OfflineExtractiveModel().generate(messages, {"temperature": 0}))
    assert response.text == "The sky is blue."
    assert response.model_snapshot == "evalkit-extractive-1"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.estimated) == (2 + 12, 4, True)


def test_needs_a_user_message():
    with pytest.raises(PermanentModelError, match="user message"):
        asyncio.run(OfflineExtractiveModel().generate([{"role": "system", "content": "hi"}], {}))


def test_parse_prompt_forms():
    rendered = "Context:\n[1] First passage\nstill first.\n\n[2] Second.\n\nQuestion: What is first?"
    assert parse_prompt(rendered) == ("What is first?", ["First passage\nstill first.", "Second."])
    assert parse_prompt("Context: The sky is blue.\nQuestion: Which colour?") == ("Which colour?", ["The sky is blue."])
    assert parse_prompt("The sky is blue.\nQuestion: Which colour?") == ("Which colour?", ["The sky is blue."])
    assert parse_prompt("Which colour is the sky?") == ("Which colour is the sky?", [])
    # the question is after the last Question: line, even if a passage quotes one
    assert parse_prompt("Context:\n[1] Question: old\n\nQuestion: new")[0] == "new"


def test_sentence_splitter():
    text = (
        "Orders placed before 2 p.m. Pacific time ship the same day. Small lamps, e.g. the Pip, draw 3.5 W. "
        'It said "Done." Then it stopped! Version 5.1 is out.\n\nA new paragraph'
    )
    assert split_sentences(text) == [
        "Orders placed before 2 p.m. Pacific time ship the same day.",
        "Small lamps, e.g. the Pip, draw 3.5 W.",
        'It said "Done."',
        "Then it stopped!",
        "Version 5.1 is out.",
        "A new paragraph",
    ]


def _rag_qa_calls() -> list[tuple[list[dict[str, str]], dict]]:
    dataset = load_dataset(RAG_QA)
    template = resolve_prompt(None, has_contexts=True)
    rows = dataset.frame.to_dict(orient="records")
    return [
        (template.render(question, contexts, row), row)
        for question, contexts, row in zip(dataset.inputs(), dataset.contexts(), rows)
    ]


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the and or of to in on at for by with is are it its no not that they their".split())


def _key_words(text: str) -> set[str]:
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _WORD.findall(text.lower()) if w not in _STOP}


def test_rag_qa_dataset_shape():
    rows = load_dataset(RAG_QA).frame
    assert len(rows) >= 60 and rows["id"].is_unique
    assert rows["contexts"].map(len).between(2, 4).all()
    kinds = Counter(rows["kind"])
    assert kinds["unanswerable"] >= 6 and kinds["multi_passage"] >= 6 and kinds["numeric"] >= 10
    assert (rows.loc[~rows["answerable"], "ground_truth"] == UNKNOWN).all()
    assert (rows["kind"] == "unanswerable").equals(~rows["answerable"])


def test_offline_model_on_rag_qa(record_property):
    """The baseline's score on the sample set: exact match is low by design (it quotes a whole
    sentence while references are phrases); the reference's key words should be in most answers."""
    model = OfflineExtractiveModel()
    calls = _rag_qa_calls()

    async def answer_all() -> list[str]:
        return [(await model.generate(messages, {})).text for messages, _ in calls]

    answers = asyncio.run(answer_all())
    truths = [row["ground_truth"] for _, row in calls]
    exact = sum(_WORD.findall(a.lower()) == _WORD.findall(t.lower()) for a, t in zip(answers, truths)) / len(calls)
    answerable = [(a, row["ground_truth"]) for a, (_, row) in zip(answers, calls) if row["answerable"]]
    containment = sum(_key_words(t) <= _key_words(a) for a, t in answerable) / len(answerable)
    record_property("exact_match", exact)
    record_property("key_words_contained", containment)
    print(f"evalkit:/extractive on rag_qa: exact match {exact:.3f}, key words in answer {containment:.3f} "
          f"({len(answerable)} answerable rows)")
    assert 0.0 <= exact <= 1.0
    assert containment >= 0.4
