"""``evalkit:/extractive``: a small extractive RAG baseline that runs in-process.

It needs no key, no network and no weights, so demos and tests run anywhere, and it is a real
baseline: a RAG system worse than "quote the best-matching sentence" has a problem. It reads the
question and passages back out of the rendered prompt (the default RAG prompt's ``Context:``
block of ``[n]`` passages and its ``Question:`` line), scores every sentence of the passages
against the question with BM25, and answers with the best sentence, or "I don't know." when no
sentence shares a word with the question. Deterministic; generation params are ignored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from evalkit.errors import PermanentModelError
from evalkit.inference.providers.base import Message, ModelResponse, Usage

UNKNOWN_ANSWER = "I don't know."
MODEL_SNAPSHOT = "evalkit-extractive-1"

# BM25's usual constants: k1 saturates repeated terms, b normalises for sentence length.
_K1 = 1.2
_B = 0.75

_STOPWORDS = frozenset(
    """a about after all also an and any are as at be been before being but by can could did do
    does don for from had has have how i if in into is it its me my no not of on or our s should
    so t than that the their them then there these they this those to was we were what when where
    which while who whom whose why will with would you your many much""".split()
)
# Words followed by a full stop that does not end the sentence. "a.m."/"p.m." are here because
# "6 p.m. Central time" is far more common in documentation than a sentence ending in "p.m.".
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf approx fig no nos mr mrs ms dr prof st jr sr inc ltd co corp dept est a.m p.m u.s".split()
)

_WORD = re.compile(r"[^\W_]+")
_QUESTION_LINE = re.compile(r"^Question:[ \t]*", re.MULTILINE)
_CONTEXT_LINE = re.compile(r"^Context:", re.MULTILINE)
_PASSAGE_NUMBER = re.compile(r"^\[\d+\][ \t]*", re.MULTILINE)
# A candidate sentence end: terminal punctuation (and closing quotes/brackets), whitespace,
# then something that can start a sentence; or a blank line.
_BOUNDARY = re.compile(r"(?<=[.!?])(?P<close>[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])|\n[ \t]*\n\s*")


class OfflineExtractiveModel:
    """The embedded extractive baseline; see the module docstring.

    Usage counts are whitespace-separated words, not tokens (the model has no tokenizer), so
    they are marked ``estimated=True``: input words of all messages, output words of the answer.
    """

    uri: str = "evalkit:/extractive"
    base_url: str | None = None

    async def generate(self, messages: list[Message], params: dict[str, Any]) -> ModelResponse:
        """Answer the last user message with its best-matching passage sentence."""
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if not users:
            raise PermanentModelError("evalkit:/extractive needs a user message holding the question")
        question, passages = parse_prompt(users[-1])
        answer = best_sentence(question, passages) or UNKNOWN_ANSWER
        usage = Usage(
            input_tokens=sum(len(m.get("content", "").split()) for m in messages),
            output_tokens=len(answer.split()),
            estimated=True,
        )
        return ModelResponse(text=answer, usage=usage, model_snapshot=MODEL_SNAPSHOT)

    async def aclose(self) -> None:
        """Nothing to release."""


def parse_prompt(text: str) -> tuple[str, list[str]]:
    """The question and the passages of a rendered user message.

    The question is the text after the last line starting with ``Question:`` (the whole message
    if there is none). The passages are the ``[n]`` items after ``Context:``; a ``Context:``
    block without numbers is one passage; without a ``Context:`` block, the text before the
    question is.
    """
    questions = list(_QUESTION_LINE.finditer(text))
    if not questions:
        return text.strip(), []
    question = text[questions[-1].end():].strip()
    before = text[: questions[-1].start()]
    context = _CONTEXT_LINE.search(before)
    if context is None:
        return question, [before.strip()] if before.strip() else []
    block = before[context.end():]
    numbers = list(_PASSAGE_NUMBER.finditer(block))
    if not numbers:
        return question, [block.strip()] if block.strip() else []
    ends = [number.start() for number in numbers[1:]] + [len(block)]
    passages = [block[number.end():end].strip() for number, end in zip(numbers, ends)]
    return question, [passage for passage in passages if passage]


def best_sentence(question: str, passages: list[str]) -> str | None:
    """The passage sentence scoring highest against ``question`` with BM25 (the earliest one on a
    tie), or None if no sentence shares a term with it."""
    query = set(tokenize(question))
    sentences = [sentence for passage in passages for sentence in _analysed(passage)]
    if not query or not sentences:
        return None
    # Sentences are the documents: IDF and average length come from this prompt's passages.
    document_frequency: Counter[str] = Counter()
    for _, terms, _ in sentences:
        document_frequency.update(terms.keys() & query)
    if not document_frequency:
        return None
    count = len(sentences)
    average_length = sum(length for _, _, length in sentences) / count or 1.0
    idf = {
        term: math.log(1.0 + (count - n + 0.5) / (n + 0.5)) for term, n in document_frequency.items()
    }
    best, best_score = None, 0.0
    for text, terms, length in sentences:
        norm = _K1 * (1.0 - _B + _B * length / average_length)
        score = 0.0
        for term, weight in idf.items():
            frequency = terms.get(term)
            if frequency:
                score += weight * frequency * (_K1 + 1.0) / (frequency + norm)
        if score > best_score:
            best, best_score = text, score
    return best


def split_sentences(text: str) -> list[str]:
    """Split on terminal punctuation followed by a capital or digit, and on blank lines, except
    after common abbreviations; decimals ("3.5") never split as no space follows the point.
    Initials ("J. Smith") do split: a lone capital before a full stop is more often a unit
    ("draws 18 W.") in product documentation."""
    sentences, start = [], 0
    for boundary in _BOUNDARY.finditer(text):
        after_punctuation = boundary.group("close") is not None  # else a blank line
        end = boundary.end("close") if after_punctuation else boundary.start()
        if after_punctuation:
            words = text[start:end].split()
            if words and words[-1].lower().strip("\"'()[]").rstrip(".!?") in _ABBREVIATIONS:
                continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = boundary.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def tokenize(text: str) -> list[str]:
    """Lowercase words without stopwords, with plural and -ed/-ing/-e endings stripped."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _stem(word: str) -> str:
    # Just enough to match "lamps"/"lamp", "released"/"release", "charging"/"charge"; the
    # length guards keep short words ("bus", "red", "string") whole.
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) >= 7 and word.endswith("ing"):
        return word[:-3]
    if len(word) >= 6 and word.endswith("ed"):
        return word[:-2]
    if len(word) >= 5 and word.endswith("e"):
        return word[:-1]
    return word


@lru_cache(maxsize=8192)
def _analysed(passage: str) -> tuple[tuple[str, Counter[str], int], ...]:
    # An evaluation sends the same passages again and again (one retrieval set per question,
    # several runs per dataset); splitting and tokenising each once keeps calls cheap.
    analysed = []
    for sentence in split_sentences(passage):
        terms = tokenize(sentence)
        if terms:
            analysed.append((sentence, Counter(terms), len(terms)))
    return tuple(analysed)
