"""Names of the tags evalkit itself sets on runs (the suite's own are in ``evalkit.suite.tags``
and ``evalkit.tracking.suite_tags``)."""

from __future__ import annotations

SOURCE = "evalkit.source"  # what made the run: "evaluate", a suite
FAILURE_REASON = "evalkit.failure_reason"  # why a run ended FAILED or KILLED, in a sentence
STOPPED_REASON = "evalkit.stopped_reason"  # why an evaluation stopped sending rows ("max_cost_usd", "judge")
RESUMED_AT = "evalkit.resumed_at"  # when an evaluation was last resumed (ms since the epoch)
REPORT_ERROR = "evalkit.report_error"  # why the HTML report could not be rendered

REASON_LIMIT = 1000  # characters of a failure reason kept on the run
