"""The exceptions evalkit raises. Every one derives from :class:`EvalkitError`::

    EvalkitError                 INTERNAL_ERROR      500
    ├── InvalidArgument          INVALID_ARGUMENT    400  (also a ValueError)
    │   ├── FilterSyntaxError                        400  a search filter that cannot be parsed
    │   └── MissingExtra                             400  an optional dependency is not installed
    ├── NotFound                 NOT_FOUND           404  (also a LookupError)
    ├── AlreadyExists            ALREADY_EXISTS      409
    ├── InvalidState             INVALID_STATE       409
    ├── StoreUnavailable         STORE_UNAVAILABLE   503
    ├── Unauthenticated          UNAUTHENTICATED     401  no, an unknown or a revoked server token
    ├── PermissionDenied         PERMISSION_DENIED   403  the token's role does not allow the call
    ├── EvaluationFailed         EVALUATION_FAILED   500  an outage or a judge that cannot work
    ├── JudgeError                                   500  a judge call with no usable answer (scored as an error)
    └── ModelError                                   500  a model call that failed (recorded on its row)
        ├── TransientModelError                           worth retrying (429, 5xx, timeouts)
        └── PermanentModelError                           retrying cannot help (400, 401, 404)

    EvaluationWarning (a UserWarning): an evaluation that finished but deserves a look.

Two signals stay inside the runner and never reach a caller: ``RetriesExhausted`` and
``BudgetExceeded``.

Each class's ``code`` and ``http_status`` are what the tracking server answers with, and
:func:`error_from_code` turns a code back into the class, so callers catch the same exceptions
whether the store is local or behind a server.
"""

from __future__ import annotations


class EvalkitError(Exception):
    """Base class: catch this to handle any evalkit failure.

    ``code`` names the kind of error on the wire and ``http_status`` is the HTTP status it maps
    to, so a server can answer with it and a client can raise the same class again."""

    code = "INTERNAL_ERROR"
    http_status = 500


class InvalidArgument(EvalkitError, ValueError):
    """A key, value, option or path given by the caller is not acceptable."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class NotFound(EvalkitError, LookupError):
    """An experiment, run or artifact that does not exist (or was deleted)."""

    code = "NOT_FOUND"
    http_status = 404


class AlreadyExists(EvalkitError):
    """An experiment name or param key that is already taken."""

    code = "ALREADY_EXISTS"
    http_status = 409


class InvalidState(EvalkitError):
    """The operation does not fit the object's state, e.g. logging to a finished run."""

    code = "INVALID_STATE"
    http_status = 409


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

    code = "STORE_UNAVAILABLE"
    http_status = 503


class Unauthenticated(EvalkitError):
    """The tracking server refused the call: no token was sent, or it is unknown or revoked
    (set ``$EVALKIT_TRACKING_TOKEN``)."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(EvalkitError):
    """The tracking server refused the call: the token's role does not allow it (readers
    cannot write; only admins manage tokens), or a browser form came without its CSRF token."""

    code = "PERMISSION_DENIED"
    http_status = 403


class EvaluationFailed(EvalkitError):
    """An evaluation ran but its result is not a measurement of the model: the endpoint was down
    (no row answered, or half or more of the rows failing on transport errors after retries), or
    the judge could not work. The run is FAILED with ``reason`` stored on it; every answer it did
    get is journalled, so ``resume_command`` continues it without paying again."""

    code = "EVALUATION_FAILED"

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


class MissingExtra(InvalidArgument):
    """A feature whose optional dependencies are not installed; the message names the extra that
    brings them (``pip install 'evalkit[<extra>]'``)."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs the {extra!r} extra, which is not installed (no module {module!r}): "
                         f"pip install 'evalkit[{extra}]'")


def error_from_code(code: str | None, message: str) -> EvalkitError:
    """The exception of the class whose ``code`` is ``code`` (EvalkitError for unknown codes)."""
    classes = {cls.code: cls for cls in (InvalidArgument, NotFound, AlreadyExists, InvalidState, StoreUnavailable,
                                         Unauthenticated, PermissionDenied)}
    return classes.get(code or "", EvalkitError)(message)


# Model calls, judges and warnings: recorded on rows and runs rather than raised to the user.

class EvaluationWarning(UserWarning):
    """An evaluation that finished but deserves a look: some rows failed, or an evaluator scored no row."""


class JudgeError(EvalkitError):
    """A judge call that gave no usable answer (garbage after re-asks, refusal, timeout)."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class ModelError(EvalkitError):
    """A model call that failed."""


class TransientModelError(ModelError):
    """Worth retrying. ``retry_after`` is the wait in seconds the server asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class PermanentModelError(ModelError):
    """Retrying cannot help (404 unknown model, 400 bad parameters, 401 bad key...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriesExhausted(Exception):
    """The last transient error, once the attempts or the run's retry budget ran out."""

    def __init__(self, error: TransientModelError, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


class BudgetExceeded(Exception):
    """Raised inside the runner when the next request would break max_cost_usd."""
