"""Whether a set of row outcomes is a measurement of the model or the trace of an outage.

One rule, used by ``evaluate()``, ``evalkit evaluate`` and the nightly job alike: no row
answered, or half or more of the rows failing on transport errors (connection errors, timeouts,
429 or 5xx after retries), is an outage, never a result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from evalkit.inference.runner.records import RowOutcome, RowStatus

OUTAGE_SHARE = 0.5  # at least this share of rows failing on transport errors is an outage
ERROR_TEXT_LIMIT = 300


def outage_reason(outcomes: Sequence[RowOutcome]) -> str | None:
    """Why these outcomes are an outage, or None when they measure the model."""
    total = len(outcomes)
    if not total:
        return None
    answered = sum(o.status is RowStatus.OK for o in outcomes)
    failed = [o for o in outcomes if o.status is RowStatus.FAILED]
    transient = sum(o.error_type == "transient" for o in failed)
    if answered == 0 and failed:
        return f"no row was answered ({len(failed)} of {total} failed; {most_common_error(failed)}): the model endpoint looks down"
    if transient / total >= OUTAGE_SHARE:
        return (f"{transient} of {total} rows failed on connection errors, timeouts, 429 or 5xx after retries "
                f"({most_common_error(failed)}): an outage, not a result")
    return None


def most_common_error(outcomes: Sequence[RowOutcome]) -> str:
    """"most common error (N rows): <text>" over the failed outcomes, for one-line messages."""
    errors = Counter((o.error or "no error recorded")[:ERROR_TEXT_LIMIT] for o in outcomes if o.status is RowStatus.FAILED)
    if not errors:
        return "no error recorded"
    text, count = errors.most_common(1)[0]
    return f"most common error ({count} row{'s' if count != 1 else ''}): {text}"
