"""Average precision of a ranked list of 0/1 relevance verdicts, shared by the judged and the
offline context precision::

    AP = sum_k (v_k * precision@k) / sum_k v_k,   precision@k = (v_1 + ... + v_k) / k

0 when no item is relevant. A relevant item ranked lower lowers the score, so retrieval order
matters: [1, 0] gives 1.0, [0, 1] gives 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence


def average_precision(verdicts: Sequence[int]) -> float:
    relevant = 0
    total = 0.0
    for rank, verdict in enumerate(verdicts, 1):
        if verdict:
            relevant += 1
            total += relevant / rank
    return total / relevant if relevant else 0.0
