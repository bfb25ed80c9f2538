"""Exactly-once writes for retried requests: the request key is stored in the write's transaction.

A client that lost the answer to a write (a timeout, a server restart) cannot know whether it was
committed, so it sends the same request again with the same ``Idempotency-Key``. The key is
inserted in the same transaction as the write, with the transaction's result: either both are
committed or neither is. A retry finds the key and gets the stored result without writing again,
so a metric batch is never appended twice and a run is never created twice. Two attempts racing
each other collide on the key's primary key, and the loser is retried and finds the winner's row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert, select

from evalkit.entities import RunInfo
from evalkit.tracking.clock import now_ms
from evalkit.tracking.sql import schema as t

T = TypeVar("T")
KEEP_KEYS_MS = 24 * 3600 * 1000  # a client retries for minutes; a day is ample


def run_once(conn: Connection, key: str | None, work: Callable[[Connection], T]) -> T:
    """``work(conn)``, unless a transaction with ``key`` was committed already: then its result."""
    if key is None:
        return work(conn)
    keys = t.request_keys.c
    row = conn.execute(select(keys.result).where(keys.request_key == key)).first()
    if row is not None:
        return _decode(row.result)
    result = work(conn)
    conn.execute(insert(t.request_keys).values(request_key=key, result=_encode(result), created_time=now_ms()))
    return result


def forget_old_keys(conn: Connection, now: int | None = None) -> int:
    """Delete keys older than ``KEEP_KEYS_MS`` (the server does at start, then hourly); the number deleted."""
    cutoff = (now if now is not None else now_ms()) - KEEP_KEYS_MS
    return conn.execute(delete(t.request_keys).where(t.request_keys.c.created_time < cutoff)).rowcount


def _encode(result: Any) -> str:
    if isinstance(result, RunInfo):
        return json.dumps({"run_info": result.to_dict()})
    return json.dumps({"value": result})


def _decode(text: str) -> Any:
    data = json.loads(text)
    if "run_info" in data:
        return RunInfo.from_dict(data["run_info"])
    value = data["value"]
    return tuple(value) if isinstance(value, list) else value
