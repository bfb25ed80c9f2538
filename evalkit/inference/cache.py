"""The response cache: one SQLite file shared by every model and judge call.

An answer is stored under :func:`cache_key`, a hash of the model URI, the endpoint, every
generation parameter and the messages, so two models, two endpoints or two temperatures never
share answers. Re-running an evaluation then costs nothing for the calls already made.

Several processes may share one cache file. Writes are batched by a background thread, so call
:meth:`ResponseCache.close` (or use the cache as a context manager) when done; what is still
queued at interpreter exit is written then.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from evalkit.errors import InvalidArgument, InvalidState, StoreUnavailable
from evalkit.inference.providers.base import Message, Usage

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BATCH_SIZE = 200
_BATCH_DELAY_S = 0.2
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cached_input_tokens INTEGER,
    usage_estimated INTEGER,
    model_snapshot TEXT,
    latency_s REAL NOT NULL,
    cost_usd REAL,
    created_at REAL NOT NULL
)
"""
_COLUMNS = (
    "text, input_tokens, output_tokens, cached_input_tokens, usage_estimated, "
    "model_snapshot, latency_s, cost_usd, created_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM responses WHERE key = ?"
_INSERT = f"INSERT OR REPLACE INTO responses (key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class CacheMode(str, Enum):
    """How a run uses the cache.

    ``ON`` reads and writes; ``OFF`` does neither; ``READ_ONLY`` reads but never writes (replay
    a shared cache); ``REFRESH`` never reads but writes, replacing stored answers.
    """

    ON = "on"
    OFF = "off"
    READ_ONLY = "read-only"
    REFRESH = "refresh"

    @classmethod
    def parse(cls, value: CacheMode | str | bool | None) -> CacheMode:
        """A mode from a CacheMode, a name (case-insensitive, ``read_only`` accepted), or
        True (``ON``) / False or None (``OFF``)."""
        if isinstance(value, CacheMode):
            return value
        if value is True:
            return cls.ON
        if value is False or value is None:
            return cls.OFF
        if isinstance(value, str):
            try:
                return cls(value.strip().lower().replace("_", "-"))
            except ValueError:
                pass
        valid = ", ".join(repr(m.value) for m in cls)
        raise InvalidArgument(f"invalid cache mode {value!r}: use one of {valid}, True, False or None")


@dataclass(frozen=True)
class CachedResponse:
    """A stored answer, with the latency (seconds) and cost (USD) of the original call."""

    text: str
    usage: Usage | None
    model_snapshot: str | None
    latency_s: float
    cost_usd: float | None
    created_at: float


def cache_key(model_uri: str, base_url: str | None, params: dict[str, Any], messages: list[Message]) -> str:
    """The cache key of one call: sha256 hex of a canonical JSON of the model URI, the endpoint,
    the generation parameters and the messages.

    Every generation parameter is part of the key, so pass all of them (temperature, max_tokens,
    seed...). A parameter whose value is None is left out: ``{"temperature": None}`` and ``{}``
    give the same key, as both leave the provider's default in place.
    """
    payload = {
        "model": model_uri,
        "base_url": base_url,
        "params": {k: v for k, v in params.items() if v is not None},
        "messages": messages,
    }
    try:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"cache key: params and messages must be JSON-serializable: {e}") from e
    # surrogatepass: a lone surrogate in decoded user text must still hash, not crash the run.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def default_cache_path() -> Path:
    """``$EVALKIT_CACHE_PATH`` if set, else ``$XDG_CACHE_HOME/evalkit/responses.db``, else
    ``~/.cache/evalkit/responses.db``."""
    explicit = os.environ.get("EVALKIT_CACHE_PATH")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "evalkit" / "responses.db"


class ResponseCache:
    """Cached model answers in one SQLite file (default :func:`default_cache_path`).

    ``get`` is a single indexed lookup, cheap enough to call from an event loop. ``put`` only
    queues: a background thread commits up to 200 answers at a time, at most 0.2 s after they
    were queued, and on :meth:`flush` / :meth:`close`. Queued answers are already returned by
    ``get`` on this instance. Thread-safe; ``hits``, ``misses`` and ``writes`` count this
    instance's lookups and accepted puts.

    Raises StoreUnavailable when the file cannot be opened or was written by a newer evalkit.
    """

    def __init__(
        self, path: str | os.PathLike | None = None, mode: CacheMode | str | bool | None = CacheMode.ON
    ) -> None:
        self.mode = CacheMode.parse(mode)
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.hits = 0
        self.misses = 0
        self.writes = 0

        # _state guards the write queue, pending answers, counters and the closed flag;
        # _read_lock serialises use of the reader connection.
        self._state = threading.Condition()
        self._read_lock = threading.Lock()
        self._pending: dict[str, CachedResponse] = {}
        self._queue: list[tuple[str, CachedResponse]] = []
        self._first_queued_at = 0.0
        self._enqueued = 0
        self._committed = 0
        self._flush_upto = 0
        self._closed = False
        self._write_error: Exception | None = None
        self._writer: threading.Thread | None = None
        self._at_exit: Any = None

        self._writer_conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        if self.mode in (CacheMode.ON, CacheMode.REFRESH):
            self._writer_conn = self._open_for_writing()
        if self.mode in (CacheMode.ON, CacheMode.READ_ONLY):
            try:
                self._reader = self._open_for_reading()
            except BaseException:
                if self._writer_conn is not None:
                    self._writer_conn.close()
                raise

    # -- public API ---------------------------------------------------------------------------

    def get(self, key: str) -> CachedResponse | None:
        """The stored answer for ``key``, or None. Always None under OFF (not counted) and
        REFRESH (counted as a miss)."""
        with self._state:
            self._check_open()
            if self.mode in (CacheMode.OFF, CacheMode.REFRESH):
                if self.mode is CacheMode.REFRESH:
                    self.misses += 1
                return None
            found = self._pending.get(key)
        if found is None:
            # Entries leave _pending only after they are committed, so a key missing from
            # _pending above is already visible to this SELECT if it was ever put.
            with self._read_lock:
                row = None
                if self._reader is not None:
                    try:
                        row = self._reader.execute(_SELECT, (key,)).fetchone()
                    except sqlite3.Error as e:
                        raise StoreUnavailable(f"cannot read response cache {self.path}: {e}") from e
            found = None if row is None else _from_row(row)
        with self._state:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def put(self, key: str, response: CachedResponse) -> None:
        """Store ``response`` under ``key``, replacing any earlier one; a no-op under OFF and
        READ_ONLY. Returns at once: the write is committed in the background."""
        if not isinstance(response, CachedResponse):
            raise InvalidArgument(f"put expects a CachedResponse, got {type(response).__name__}")
        with self._state:
            self._check_open()
            if self._writer_conn is None:
                return
            self._pending[key] = response
            if not self._queue:
                self._first_queued_at = time.monotonic()
            self._queue.append((key, response))
            self._enqueued += 1
            self.writes += 1
            if self._writer is None:
                self._start_writer()
            # The writer waits for a first answer, then for a full batch or its deadline: waking
            # it for every answer in between would only hand it the GIL to go back to sleep.
            if len(self._queue) == 1 or len(self._queue) >= _BATCH_SIZE:
                self._state.notify_all()

    def flush(self) -> None:
        """Block until every answer put so far is committed. Raises StoreUnavailable if a
        background write failed since the last flush."""
        with self._state:
            target = self._enqueued
            self._flush_upto = max(self._flush_upto, target)
            self._state.notify_all()
            while self._committed < target:
                self._state.wait()
            self._raise_write_error()

    def close(self) -> None:
        """Commit what is queued and release the file. Safe to call twice."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.notify_all()
        if self._writer is not None:
            self._writer.join()
            atexit.unregister(self._at_exit)
        with self._read_lock:
            for conn in (self._reader, self._writer_conn):
                if conn is not None:
                    conn.close()
            self._reader = self._writer_conn = None
        with self._state:
            self._raise_write_error()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ResponseCache({str(self.path)!r}, mode={self.mode.value!r}, "
            f"hits={self.hits}, misses={self.misses}, writes={self.writes})"
        )

    # -- opening ------------------------------------------------------------------------------

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        # mode=ro: a read-only cache must never create or change the file.
        target = f"{self.path.resolve().as_uri()}?mode=ro" if read_only else str(self.path)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) and reads see the
        # latest commit of any process.
        conn = sqlite3.connect(target, uri=read_only, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return conn

    def _open_for_writing(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect(read_only=False)
        except (OSError, sqlite3.Error) as e:
            raise StoreUnavailable(f"cannot open response cache {self.path}: {e}") from e
        try:
            if self._check_version(conn) == 0:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # Re-read under the write lock: another process may have created the schema.
                    if self._check_version(conn) == 0:
                        conn.execute(_SCHEMA)
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            # NORMAL is durable enough for a cache (a power cut may lose the last batch, never
            # corrupt the file) and avoids an fsync per commit.
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as e:
            conn.close()
            raise StoreUnavailable(f"cannot open response cache {self.path}: {e}") from e
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_for_reading(self) -> sqlite3.Connection | None:
        if self.mode is CacheMode.READ_ONLY:
            # Replaying a cache that does not exist is a run where every call misses; creating
            # an empty file would only hide a mistyped path from the next run.
            if not self.path.exists():
                return None
            try:
                conn = self._connect(read_only=True)
            except sqlite3.Error as e:
                raise StoreUnavailable(f"cannot open response cache {self.path}: {e}") from e
        else:
            try:
                conn = self._connect(read_only=False)
            except sqlite3.Error as e:
                raise StoreUnavailable(f"cannot open response cache {self.path}: {e}") from e
        try:
            version = self._check_version(conn)
        except BaseException:
            conn.close()
            raise
        if version == 0:  # an empty file: nothing to read
            conn.close()
            return None
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> int:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open response cache {self.path}: {e}") from e
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"response cache {self.path} has schema version {version}, newer than this evalkit "
                f"supports ({SCHEMA_VERSION}); upgrade evalkit or use another cache path"
            )
        return version

    # -- background writer --------------------------------------------------------------------

    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._write_loop, name=f"evalkit-cache-writer:{self.path.name}", daemon=True
        )
        self._writer.start()
        # The writer is a daemon so a forgotten cache cannot hang interpreter exit; commit its
        # queue at exit instead. A weak reference keeps the hook from keeping the cache alive.
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            cache = ref()
            if cache is not None:
                cache.close()

        self._at_exit = close_at_exit
        atexit.register(close_at_exit)

    def _write_loop(self) -> None:
        while True:
            with self._state:
                while not self._queue and not self._closed:
                    self._state.wait()
                if not self._queue:
                    return
                deadline = self._first_queued_at + _BATCH_DELAY_S
                while (
                    len(self._queue) < _BATCH_SIZE
                    and not self._closed
                    and self._flush_upto <= self._committed
                    and (remaining := deadline - time.monotonic()) > 0
                ):
                    self._state.wait(remaining)
                batch, self._queue = self._queue, []
            error = self._commit(batch)
            with self._state:
                for key, response in batch:
                    if self._pending.get(key) is response:
                        del self._pending[key]
                self._committed += len(batch)
                if error is not None and self._write_error is None:
                    self._write_error = error
                self._state.notify_all()

    def _commit(self, batch: list[tuple[str, CachedResponse]]) -> Exception | None:
        assert self._writer_conn is not None
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, [(key, *_to_row(response)) for key, response in batch])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as e:  # the thread must survive to serve later batches and flushes
            log.warning("response cache %s: could not write %d answers: %s", self.path, len(batch), e)
            return e
        return None

    def _raise_write_error(self) -> None:
        error, self._write_error = self._write_error, None
        if error is not None:
            raise StoreUnavailable(f"could not write to response cache {self.path}: {error}") from error

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidState(f"response cache {self.path} is closed")


def _to_row(response: CachedResponse) -> tuple[Any, ...]:
    usage = response.usage
    return (
        response.text,
        None if usage is None else usage.input_tokens,
        None if usage is None else usage.output_tokens,
        None if usage is None else usage.cached_input_tokens,
        None if usage is None else int(usage.estimated),
        response.model_snapshot,
        response.latency_s,
        response.cost_usd,
        response.created_at,
    )


def _from_row(row: tuple[Any, ...]) -> CachedResponse:
    text, input_tokens, output_tokens, cached_tokens, estimated, snapshot, latency_s, cost_usd, created = row
    usage = None
    if input_tokens is not None:
        usage = Usage(input_tokens, output_tokens, cached_tokens, bool(estimated))
    return CachedResponse(text, usage, snapshot, latency_s, cost_usd, created)
