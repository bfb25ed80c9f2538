"""The HTTP side of the REST store: one pooled httpx client per server, retries, errors, the token.

Reads are retried on connection errors and 5xx answers with exponential backoff (with jitter);
so are writes, each with an ``Idempotency-Key`` made once per call and sent on every attempt, so
the server commits it at most once (``evalkit.tracking.sql.idempotency``). A retried call
therefore survives a server restart without losing or doubling anything. The token comes from
``$EVALKIT_TRACKING_TOKEN`` at each request and goes only into the ``Authorization`` header:
never into a URL, a message or a log.
"""

from __future__ import annotations

import getpass
import os
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx

from evalkit.errors import EvalkitError, StoreUnavailable, error_from_code
from evalkit.tracking.rest.api import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    TOKEN_ENV,
    USER_HEADER,
)

RETRY_SECONDS_ENV = "EVALKIT_HTTP_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0  # long enough for a server restart or a rolling deploy
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
RETRY_STATUSES = {500, 502, 503, 504}
_FIRST_DELAY, _MAX_DELAY = 0.1, 5.0
STREAM_CHUNK = 1 << 20


def retry_budget() -> float:
    """How long a call keeps retrying, in seconds (``$EVALKIT_HTTP_RETRY_SECONDS``)."""
    try:
        return float(os.environ.get(RETRY_SECONDS_ENV, DEFAULT_RETRY_SECONDS))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


def auth_headers() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


class RestClient:
    """Calls to one evalkit server at ``base_url`` (``http(s)://host:port[/prefix]``). Thread-safe."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                                 headers={USER_HEADER: _user_name(), "User-Agent": "evalkit"})

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             write: bool = False) -> Any:
        """``method`` on ``API_PREFIX + path``; the JSON answer, or the evalkit error it encodes.
        ``write=True`` adds an idempotency key, the same on every retry."""
        headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex} if write else {}
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        response = self.send(method, API_PREFIX + path, json=json, params=params, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None, retry: bool = True,
             stream_to: str | os.PathLike[str] | None = None, **kwargs: Any) -> httpx.Response:
        """One request with the token, retried (when ``retry``) on connection errors and 5xx; a
        non-2xx answer (but a redirect) raises its evalkit error. With ``stream_to``, a 2xx answer's
        body is streamed into that file instead of being read into memory."""
        deadline = time.monotonic() + retry_budget()
        delay = _FIRST_DELAY
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._attempt(method, path, {**auth_headers(), **(headers or {})}, stream_to, kwargs)
            except httpx.TransportError as exc:
                problem: str = f"{type(exc).__name__}: {exc}"
                response = None
            else:
                if response.status_code < 400 or response.status_code in (301, 302, 307, 308):
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise response_error(response)
                problem = f"HTTP {response.status_code}"
            if not retry or time.monotonic() + delay > deadline:
                if response is not None:
                    raise response_error(response)
                raise StoreUnavailable(f"tracking server {self.base_url} cannot be reached after {attempts} "
                                       f"attempt(s): {problem}")
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _MAX_DELAY)

    def _attempt(self, method: str, path: str, headers: dict[str, str], stream_to: str | os.PathLike[str] | None,
                 kwargs: dict[str, Any]) -> httpx.Response:
        if stream_to is None:
            return self.http.request(method, path, headers=headers, **kwargs)
        with self.http.stream(method, path, headers=headers, **kwargs) as response:
            if 200 <= response.status_code < 300:
                with open(stream_to, "wb") as out:
                    for chunk in response.iter_bytes(STREAM_CHUNK):
                        out.write(chunk)
            else:
                response.read()
        return response

    def pages(self, method: str, path: str, items: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Iterable[list[Any]]:
        """Every page of a paged answer (``items`` and ``next_page_token``), following the tokens."""
        token = None
        while True:
            if body is not None:
                answer = self.call(method, path, json={**body, "page_token": token})
            else:
                answer = self.call(method, path, params={**(params or {}), "page_token": token})
            yield answer[items]
            token = answer.get("next_page_token")
            if not token:
                return

    def close(self) -> None:
        self.http.close()


def response_error(response: httpx.Response) -> EvalkitError:
    """The evalkit error a non-2xx answer encodes (``error_code``/``message``), or one naming the status."""
    try:
        body = response.json()
        code, message = body.get("error_code"), body.get("message")
    except (ValueError, AttributeError):
        code, message = None, None
    if not message:
        message = f"HTTP {response.status_code} from the tracking server: {response.text[:200]!r}"
    if response.status_code == 401:
        message = f"{message} (set EVALKIT_TRACKING_TOKEN to a valid token)"
    if code is None and response.status_code == 503:
        code = StoreUnavailable.code
    return error_from_code(code, message)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers; the header is optional
        return "unknown"
