"""The evaluators a run used, as recorded with it, and which way each of its metrics improves.

evaluate() records each evaluator's metadata (``evalkit.evaluation.scoring.EvaluatorInfo``: name, version,
metric prefix, stage, direction, requirements) in the run's ``evaluators.json``, so that the
report and the suite's gates, which only have the stored run, read the same facts evaluate()
used rather than re-deriving them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from evalkit.entities import Run
from evalkit.errors import NotFound
from evalkit.evaluation.run_metrics import run_metric_higher_is_better
from evalkit.evaluation.scoring import EvaluatorInfo
from evalkit.tracking.client import TrackingClient

EVALUATORS_FILE = "evaluators.json"
# Runs logged before evaluators.json existed: the built-in evaluators that were better low then.
_LEGACY_LOWER_IS_BETTER = ("latency", "cost", "toxicity")


def log_evaluators(client: TrackingClient, run_id: str, evaluators: Sequence[EvaluatorInfo]) -> None:
    """Record the evaluators' metadata with the run."""
    client.log_dict(run_id, {"evaluators": [info.to_json() for info in evaluators]}, EVALUATORS_FILE)


def load_evaluators(client: TrackingClient, run: Run) -> list[EvaluatorInfo]:
    """The evaluators ``run`` used, in its order: from its ``evaluators.json``, or for a run
    logged before that file existed, worked out from its ``evaluators`` param and its metrics.
    Empty for a run not logged by evaluate()."""
    try:
        payload = json.loads(client.load_text(run.info.run_id, EVALUATORS_FILE))
        return [EvaluatorInfo.from_json(item) for item in payload["evaluators"]]
    except NotFound:
        return _legacy(run)
    except (ValueError, KeyError, TypeError):  # hand-edited or truncated: the params still say enough
        return _legacy(run)


def _legacy(run: Run) -> list[EvaluatorInfo]:
    metrics = run.data.metrics
    found = []
    for item in filter(None, run.data.params.get("evaluators", "").split(",")):
        name, _, version = item.partition("@")
        # The prefixes earlier versions used: <name>/<version>; the ragas family's
        # ragas/<metric>/<version>; latency and cost under their bare names.
        candidates = (f"{name}/{version}", f"{name.replace(':', '/')}/{version}", name)
        prefix = next((c for c in candidates if f"{c}/rows_scored" in metrics), candidates[0])
        found.append(EvaluatorInfo(name, version, prefix, higher_is_better=name not in _LEGACY_LOWER_IS_BETTER))
    return found


def owner(metric: str, evaluators: Sequence[EvaluatorInfo]) -> EvaluatorInfo | None:
    """The evaluator whose aggregate ``metric`` is (the longest matching prefix), if any."""
    owners = [info for info in evaluators if info.owns(metric)]
    return max(owners, key=lambda info: len(info.metric_prefix)) if owners else None


def higher_is_better(metric: str, evaluators: Sequence[EvaluatorInfo]) -> bool:
    """Whether a higher ``metric`` is better: the declaration of the evaluator that logs it, else
    the run-level metrics' table (``evalkit.evaluation.run_metrics.LOWER_IS_BETTER``)."""
    info = owner(metric, evaluators)
    return info.higher_is_better if info is not None else run_metric_higher_is_better(metric)
