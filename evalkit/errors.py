"""The exceptions evalkit raises. Every one derives from :class:`EvalkitError`."""

from __future__ import annotations


class EvalkitError(Exception):
    """Base class: catch this to handle any evalkit failure."""


class InvalidArgument(EvalkitError, ValueError):
    """A key, value, option or path given by the caller is not acceptable."""


class NotFound(EvalkitError, LookupError):
    """An experiment, run or artifact that does not exist (or was deleted)."""


class AlreadyExists(EvalkitError):
    """An experiment name or param key that is already taken."""


class InvalidState(EvalkitError):
    """The operation does not fit the object's state, e.g. logging to a finished run."""


class FilterSyntaxError(InvalidArgument):
    """A search filter or order_by clause that cannot be parsed.

    The message quotes the text and points a caret at the position of the problem.
    """

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text = text
        self.position = position
        self.problem = problem
        caret = " " * position + "^"
        super().__init__(f"{problem} at position {position}:\n  {text}\n  {caret}")


class StoreUnavailable(EvalkitError):
    """The tracking store cannot be reached or opened (bad URI, server down, newer schema)."""


class EvaluationFailed(EvalkitError):
    """An evaluation ran but its result is not a measurement of the model: the endpoint was down
    (no row answered, or half or more of the rows failing on transport errors after retries), or
    the judge could not work. The run is FAILED with ``reason`` stored on it; every answer it did
    get is journalled, so ``resume_command`` continues it without paying again."""

    def __init__(self, reason: str, run_id: str, endpoint: str | None, counts: dict[str, int],
                 resume_command: str) -> None:
        self.reason = reason
        self.run_id = run_id
        self.endpoint = endpoint
        self.counts = counts
        self.resume_command = resume_command
        answered, total = counts.get("answered", 0), counts.get("rows", 0)
        where = f" Endpoint: {endpoint}." if endpoint else ""
        super().__init__(
            f"evaluation failed: {reason}. Run {run_id} is FAILED with {answered} of {total} rows answered"
            f" ({counts.get('failed', 0)} failed, {counts.get('skipped', 0)} not sent).{where}"
            f" Resume with: {resume_command}"
        )
