"""Text helpers the offline evaluators share: SQuAD answer normalisation, tokens, content
tokens and SQuAD token-level F1.

- ``normalize_answer``: lower case, drop ASCII punctuation, drop the articles a/an/the,
  collapse white space (SQuAD v1.1/v2.0 ``normalize_answer``, same order of steps).
- ``tokens``: the normalised answer split on white space.
- ``content_tokens``: ``tokens`` minus ``STOPWORDS``.
- ``vocabulary``: the set of ``tokens``, for membership tests against long texts.
- ``token_f1``: with ``common = |Counter(pred) & Counter(ref)|`` (multiset overlap),
  precision = common / |pred|, recall = common / |ref|, F1 = 2PR / (P + R); both empty gives
  (1, 1, 1), exactly one empty gives (0, 0, 0).
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ARTICLE_WORDS = frozenset(("a", "an", "the"))
_PUNCTUATION = str.maketrans("", "", string.punctuation)

# Function words, plus contractions as they look once normalisation has removed the apostrophe
# ("don't" -> "dont"), plus a few words of hedging and refusal: none of them carries a claim a
# context could support, so "I don't know." has no content tokens at all.
STOPWORDS = frozenset(
    """
    i me my myself we us our ours ourselves you your yours yourself he him his himself she her
    hers herself it its itself they them their theirs themselves this that these those who whom
    whose which what am is are was were be been being have has had having do does did doing
    will would shall should can could may might must of in on at by for with about against
    between into through during before after above below to from up down out off over under
    and but or nor if then else so than too very as because while until there here when where
    why how all any both each few more most other some such only own same just also not no
    s t now
    im ive youre youve youll hes shes theyre theyve dont doesnt didnt isnt arent wasnt werent
    cant couldnt wont wouldnt shouldnt hasnt havent hadnt thats theres whats
    know think sure unsure sorry
    """.split()
)


# The default evaluators read each answer and target several times (exact match, token F1 twice,
# K-Precision), one evaluator over a chunk's rows after the other: the last few thousand texts'
# words and F1s are kept, so that each is worked out once when a chunk's answers and targets fit
# (about 2,000 rows). Larger chunks (the engine's are up to 10,000 rows) miss; a bigger memo would
# cost memory per text, so the words should rather be worked out once per row for all evaluators.
_MEMO = 4096


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower, drop punctuation, drop a/an/the, collapse white space."""
    return " ".join(_words(text))


def tokens(text: str) -> list[str]:
    """The words of the normalised text."""
    return list(_words(text))


@functools.lru_cache(maxsize=_MEMO)
def _words(text: str) -> tuple[str, ...]:
    return tuple(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def vocabulary(text: str) -> set[str]:
    """``set(tokens(text))``, faster on long texts (contexts): each distinct word is looked at once,
    and a word of letters and digits only loses nothing to the article rule unless it is one."""
    words: set[str] = set()
    for word in set(text.lower().translate(_PUNCTUATION).split()):
        if word.isalnum():  # what the pattern's \b sees as one word: an article only if it is one
            if word not in _ARTICLE_WORDS:
                words.add(word)
        else:
            words.update(_ARTICLES.sub(" ", word).split())
    return words


def content_tokens(text: str) -> list[str]:
    """The normalised words that are not stopwords, in order."""
    return [t for t in _words(text) if t not in STOPWORDS]


@functools.lru_cache(maxsize=_MEMO)
def token_f1(prediction: str, reference: str) -> tuple[float, float, float]:
    """SQuAD token-level (precision, recall, F1) of ``prediction`` against ``reference``."""
    predicted, expected = _words(prediction), _words(reference)
    if not predicted or not expected:
        same = float(predicted == expected)
        return same, same, same
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return precision, recall, 2 * precision * recall / (precision + recall)
