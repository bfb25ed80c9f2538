"""faithfulness, offline (kprecision-v1): K-Precision, the share of the answer's content tokens
that appear in the retrieved contexts.

K-Precision is from Adlakha et al. 2023, "Evaluating Correctness and Faithfulness of
Instruction-Following Models for Question Answering", a token-overlap metric the authors found
to correlate highly with human judgements of faithfulness. Here::

    K-Precision = |{answer content tokens found in the contexts}| / |answer content tokens|

Answer tokens are counted with repetition; the contexts are joined and normalised as SQuAD
does (``evaluators.text``), and content tokens are the normalised words minus stopwords.

Not applicable: a row without retrieved context (nothing to be faithful to), and an answer
with no content tokens ("I don't know."), which makes no claim, so the share is undefined
rather than perfect. The justification names the first 10 unsupported tokens. Aggregate: the
mean over scored rows, with denominators.

This is the scorer used when no judge is configured; the public name is the same as the
judge's, ``faithfulness``, and the version tells the two apart.
"""

from __future__ import annotations

from evalkit.evaluators.base import RowEvaluator
from evalkit.evaluators.text import content_tokens, vocabulary

from evalkit.evaluation.scoring import EvalRow, Score

_SHOWN_UNSUPPORTED = 10


class OfflineFaithfulness(RowEvaluator):
    name = "faithfulness"
    version = "kprecision-v1"
    requires = ("contexts",)
    metric_prefix = None  # faithfulness/kprecision-v1/...
    stage = "score"
    higher_is_better = True

    def score_row(self, row: EvalRow) -> Score:
        if not any(c.strip() for c in row.contexts):
            return Score(None, applicable=False, justification="the row has no retrieved context")
        claimed = content_tokens(row.output or "")
        if not claimed:
            return Score(None, applicable=False, justification="the answer makes no checkable claim")
        # Stopwords can stay in the context's vocabulary: answer content tokens never are one.
        words = vocabulary(" ".join(row.contexts))
        unsupported = [t for t in claimed if t not in words]
        supported = len(claimed) - len(unsupported)
        justification = f"{supported} of {len(claimed)} content tokens appear in the context"
        if unsupported:
            shown = list(dict.fromkeys(unsupported))[:_SHOWN_UNSUPPORTED]
            justification += "; unsupported: " + ", ".join(shown)
        return Score(supported / len(claimed), justification)
