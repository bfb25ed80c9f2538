"""Who is acting and which client request is being served: set by the tracking server per request.

A server serves many users from one store, so the store cannot ask the operating system who is
logging (``getpass``): the server puts the authenticated name here, and the SQL store records it
as the user of the runs it creates. The request key is the client's ``Idempotency-Key``: the SQL
store records it in the same transaction as the write it made, and a retried request with the same
key gets the first attempt's result instead of writing again (``evalkit.tracking.sql.idempotency``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestKey:
    """A client's idempotency key and how many write transactions the request has made so far
    (each transaction of one request is recorded under ``key#n``, in the same order on a retry)."""

    key: str
    transactions: int = 0

    def next_key(self) -> str:
        self.transactions += 1
        return f"{self.key}#{self.transactions}"


acting_user: ContextVar[str | None] = ContextVar("evalkit_acting_user", default=None)
request_key: ContextVar[RequestKey | None] = ContextVar("evalkit_request_key", default=None)


@contextmanager
def request_scope(user: str | None, key: str | None) -> Iterator[None]:
    """Serve one request as ``user`` (None: the process's user) with idempotency key ``key``."""
    user_token = acting_user.set(user)
    key_token = request_key.set(RequestKey(key) if key else None)
    try:
        yield
    finally:
        acting_user.reset(user_token)
        request_key.reset(key_token)
