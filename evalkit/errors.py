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
