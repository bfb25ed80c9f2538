"""Scoring rows where they were answered: what an evaluation hands an executor whose workers can
score the rows they answer (the Ray executor's ``score_on_workers``), so that CPU-heavy offline
evaluators do not all run in the driver.

The executor knows nothing of evaluators or scores: it sends the ``RowScorer`` to its workers, calls
it there on the rows of each batch once they are answered, and hands what it returns back to the
evaluation (``WorkerScoring.take``). Rows it brings back no scores for (cached, journalled, failed
on the driver, or answered by a worker that died before scoring) are scored by the evaluation itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalkit.inference.runner.records import RowJob, RowOutcome


class RowScorer(ABC):
    """Scores answered rows in the worker process that answered them.

    Built by the evaluation and sent to each worker once per evaluation, so it must pickle (the
    evaluators it holds travel with it and are rebuilt there once).
    """

    @abstractmethod
    async def score(self, jobs: list[RowJob], outcomes: list[RowOutcome], row_data: list[Any]) -> list[Any]:
        """The scores of each of ``outcomes``, in the same order; ``jobs[k]`` and ``row_data[k]``
        (what ``WorkerScoring.row_data`` gave for it) are ``outcomes[k]``'s row. What a row's
        scores are is the evaluation's business: the executor only carries them back."""


@dataclass(frozen=True)
class WorkerScoring:
    """What an evaluation offers an executor (``Executor.score_with``).

    ``scorer`` goes to the workers; the two functions are called in the driver: ``row_data`` gives
    what the scorer needs of each job's row besides the job itself (sent with the batch), and
    ``take`` receives one row's scores as the worker's scorer returned them.
    """

    scorer: RowScorer
    row_data: Callable[[list[RowJob]], list[Any]]
    take: Callable[[int, Any], None]
