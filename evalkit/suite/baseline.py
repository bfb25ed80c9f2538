"""Which run a suite run is compared with: the last passing run of the same suite, or a run
named explicitly (a suite run, whose children pair up by dataset and model, or a single run
used as the baseline of every pair)."""

from __future__ import annotations

from dataclasses import dataclass, field

from evalkit.errors import InvalidArgument, NotFound
from evalkit.suite import tags
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.suite_tags import PASSED

LAST_PASSING = "last-passing"


@dataclass
class Baseline:
    """The baseline run of each (dataset, model) pair, and how it was chosen."""

    source: str  # "last-passing" or "explicit"
    run_id: str  # the suite run (or the single run) chosen
    children: dict[tuple[str, str], str] = field(default_factory=dict)
    single: str | None = None  # an explicit non-suite run, the baseline of every pair

    def for_pair(self, dataset: str, model: str) -> str | None:
        return self.single or self.children.get((dataset, model))


def resolve_baseline(client: TrackingClient, experiment_id: str, suite: str, wanted: str | None,
                     exclude: str | None = None) -> Baseline | None:
    """The baseline for this suite run; None on the first run (no passing run yet).

    ``wanted`` is ``"last-passing"`` (or None) or a run id; an unknown run id is an error.
    ``exclude`` is the current suite run, which is never its own baseline.
    """
    if wanted and wanted != LAST_PASSING:
        try:
            run = client.get_run(wanted)
        except NotFound:
            raise InvalidArgument(f"baseline run {wanted!r} does not exist") from None
        if run.data.tags.get(tags.ROLE) == tags.PARENT:
            return Baseline("explicit", wanted, _children(client, run.info.experiment_id, wanted))
        return Baseline("explicit", wanted, single=wanted)
    query = (f"tags.`{tags.SUITE}` = '{_quote(suite)}' AND tags.`{tags.ROLE}` = '{tags.PARENT}' "
             f"AND tags.`{tags.STATUS}` = '{PASSED}'")
    if exclude:
        query += f" AND attributes.run_id != '{exclude}'"
    runs, _ = client.search_runs(experiment_id, query, max_results=1, order_by=["attributes.start_time DESC"])
    if not runs:
        return None
    parent = runs[0].info.run_id
    return Baseline(LAST_PASSING, parent, _children(client, experiment_id, parent))


def _children(client: TrackingClient, experiment_id: str, parent: str) -> dict[tuple[str, str], str]:
    runs, _ = client.search_runs(experiment_id, f"attributes.parent_run_id = '{parent}'", max_results=1000)
    return {(run.data.tags[tags.DATASET], run.data.tags[tags.MODEL]): run.info.run_id for run in runs
            if tags.DATASET in run.data.tags and tags.MODEL in run.data.tags}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
