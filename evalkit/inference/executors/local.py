"""The local executor: the rows are answered in this process, on the evaluation's event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from evalkit.errors import InvalidArgument
from evalkit.inference.executors.base import Executor

if TYPE_CHECKING:
    from evalkit.inference.runner.records import RowJob, RowOutcome
    from evalkit.inference.runner.runner import Runner


class LocalExecutor(Executor):
    """``concurrency`` requests at a time from this process (the default)."""

    name = "local"

    def __init__(self, **options: object) -> None:
        if options:
            raise InvalidArgument(f"the local executor takes no executor_options, got {', '.join(sorted(options))}")

    async def answer(self, runner: Runner, jobs: list[RowJob], record: Callable[[RowOutcome], None]) -> None:
        await runner.answer_here(jobs, record)
