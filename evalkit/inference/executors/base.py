"""The executor interface, and finding an executor by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evalkit import plugins
from evalkit.errors import InvalidArgument

if TYPE_CHECKING:
    from evalkit.inference.executors.scoring import WorkerScoring
    from evalkit.inference.runner.records import RowJob, RowOutcome
    from evalkit.inference.runner.runner import Runner


class Executor(ABC):
    """Answers the rows of an evaluation that the cache could not.

    The runner that calls it has already looked up the cache and keeps the journal, the cache and
    the budget in the driver: an executor only gets the rows to send and hands each outcome to
    ``record`` as soon as it has it, exactly once per row (answered, failed or skipped).
    """

    name: str = ""
    # Whether answers are made in other processes, which go on answering whatever this one does:
    # then the evaluation journals them as they come and scores only once they are all in, so that
    # no paid answer waits unjournalled behind scoring (a killed driver would pay for it again).
    answers_elsewhere: bool = False

    @abstractmethod
    async def answer(self, runner: Runner, jobs: list[RowJob], record: Callable[[RowOutcome], None]) -> None:
        """Answer ``jobs`` with ``runner``'s model, params and limits; ``record`` each outcome."""

    def params(self) -> dict[str, str]:
        """What the run logs about the executor (never an address's credentials)."""
        return {"executor": self.name}

    def score_with(self, scoring: WorkerScoring) -> bool:
        """Whether the rows this executor answers in the evaluation about to start are scored where
        they are answered, with ``scoring`` (see ``evalkit.inference.executors.scoring``). By default
        they are not: the driver scores every row."""
        return False

    def close(self) -> None:
        """Free what the executor holds (workers, actors) once the evaluation is over."""


def get_executor(executor: str | Executor | None, options: dict[str, Any] | None = None) -> Executor:
    """The executor named ``executor`` (``"local"``, ``"ray"`` or one installed under the
    ``evalkit.executors`` entry-point group) built with ``options``, or ``executor`` itself."""
    if isinstance(executor, Executor):
        if options:
            raise InvalidArgument("executor_options apply to an executor given by name, not to an Executor object")
        return executor
    name = executor or "local"
    found = plugins.find_plugins(plugins.EXECUTORS)
    if not isinstance(name, str) or name not in found:
        raise InvalidArgument(f"unknown executor {name!r}: known executors are {', '.join(sorted(found))}")
    factory = found[name].load()
    return factory(**(options or {}))
