"""A fake OpenAI-compatible HTTP server for tests and benchmarks.

It answers ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/responses``,
``POST /v1/embeddings``, ``POST /v1/moderations`` and ``GET /v1/models`` deterministically (the
first three also as server-sent-event streams with ``"stream": true``, the chat and completions
streams ending in a usage chunk only when ``stream_options.include_usage`` asks for it, like the
real API), and can inject latency and faults (429, 500, hangs, malformed bodies, missing usage,
dropped connections) either at random from a seed or scripted per prompt.

In a test::

    with FakeOpenAIServer(FakeConfig(fail_first=2)) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.stats.messages_counts()[messages_hash(messages)] == 3

From a benchmark, in its own process so that the server's CPU is not charged to the client::

    python -m evalkit.testing.fake_openai --port 8099 --latency 0.2 --rate-429 0.1
    python -m evalkit.testing.fake_openai --responder evalkit.testing.fake_judge:judge_responder

``GET /_stats`` and ``POST /_reset`` expose and clear the counters across processes.

Per-request work is kept small on purpose (plain dicts and ``json.dumps``, no logging): the server
has to sustain the ~1,000 requests/s that the client benchmarks push through it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import importlib
import itertools
import json
import math
import random
import re
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

__all__ = [
    "FakeConfig",
    "FakeOpenAIServer",
    "FakeStats",
    "LoggedRequest",
    "Responder",
    "default_answer",
    "embed_text",
    "messages_hash",
]

Responder = Callable[[dict[str, Any]], str]
"""Gets the parsed chat request body and returns the assistant's answer text."""

DEFAULT_SNAPSHOTS = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
EMBEDDING_DIMENSIONS = 64
MODERATION_MODEL = "omni-moderation-latest"
# Listed by GET /v1/models next to the chat models of FakeConfig.snapshots.
_OTHER_MODELS = ("text-embedding-3-small", "text-embedding-3-large", MODERATION_MODEL)

_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
FLAGGED_WORDS = {"idiot": "harassment", "stupid": "harassment", "hate": "hate", "kill": "violence"}
"""Lowercased word -> the moderation category it flags."""

_WORD = re.compile(r"\w+")
# The first non-empty line after a "Context:" label; the default answer is its first sentence.
_CONTEXT = re.compile(r"^[ \t]*Context:\s*(.*)$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r".*?[.!?](?=\s|$)")
_RATE_LIMIT_WINDOW = 60.0
# The 200 body sent for rate_malformed: a JSON document cut off mid-way, as a broken proxy would.
_MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"ind'


@dataclass
class FakeConfig:
    """How the fake server behaves; the server reads it on every request, so tests may change
    fields between requests (``server.config.rate_500 = 0.1``).

    The ``rate_*`` fault probabilities are exclusive and tried in the order listed; one draw from a
    ``random.Random(seed)`` per model request decides, so a sequential client sees the same faults
    on every run. Errors (429, 500) are answered at once, like the real API's front end; ``latency``
    only delays answers that reach the model.
    """

    latency: float = 0.0
    """Seconds to wait before answering."""
    latency_jitter: float = 0.0
    """Each request's latency varies uniformly within +/- this many seconds (never below 0)."""
    seed: int = 0
    """Seeds fault and jitter decisions; applied at start and by reset_stats()."""
    rate_429: float = 0.0
    """429 with ``Retry-After: <retry_after>`` and ``x-ratelimit-reset-requests: <retry_after>s``."""
    rate_500: float = 0.0
    rate_hang: float = 0.0
    """Wait ``hang_seconds`` before answering normally; a client timeout cuts it first."""
    rate_malformed: float = 0.0
    """200 with a body that is not valid JSON."""
    rate_missing_usage: float = 0.0
    """200 without the ``usage`` field."""
    rate_drop: float = 0.0
    """Close the connection without any response."""
    retry_after: float = 1.0
    hang_seconds: float = 3600.0
    fail_first: int = 0
    """The first N chat requests with the same messages (same messages_hash) get a 429 with
    ``Retry-After: 0``; later ones go through. For testing retries."""
    rpm_limit: int | None = None
    """At most this many accepted model requests per sliding 60 s window; the rest get a 429 whose
    Retry-After says when a slot frees up, counted in ``stats.rate_limited``."""
    snapshots: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SNAPSHOTS))
    """Model alias -> the snapshot name answers report; other names are echoed unchanged."""
    unknown_models: set[str] = field(default_factory=lambda: {"does-not-exist"})
    """Model names answered with OpenAI's 404 ``model_not_found``."""
    unsupported_response_formats: set[str] = field(default_factory=set)
    """``response_format`` types refused with a 400 (e.g. ``{"json_schema"}``, as older models do)."""
    default_temperature_only: bool = False
    """Refuse any temperature but 1 with a 400, as OpenAI's reasoning models do."""
    cached_tokens: int = 0
    """Prompt tokens reported as served from the prompt cache (at most the prompt's count), in
    ``prompt_tokens_details`` / ``input_tokens_details``."""


class LoggedRequest(NamedTuple):
    """One chat request as the server received it."""

    time: float
    """time.monotonic() on arrival."""
    path: str
    model: str | None
    messages_hash: str
    """messages_hash() of the request's messages, or "" if it had no messages list."""


@dataclass
class FakeStats:
    """Counters of one server since it started or since the last reset_stats()."""

    requests: int = 0
    """Every request to a /v1 endpoint, including rejected, hung and dropped ones."""
    by_status: Counter[int] = field(default_factory=Counter)
    """HTTP status -> responses sent. Hung requests whose client gave up and drops send none."""
    rate_limited: int = 0
    """429s from rpm_limit only (fail_first and rate_429 ones show in by_status and faults)."""
    faults: Counter[str] = field(default_factory=Counter)
    """Injected faults by kind: "fail_first", "429", "500", "hang", "malformed", "missing_usage",
    "drop"."""
    request_log: list[LoggedRequest] = field(default_factory=list)
    """Every chat request received, in arrival order."""
    _messages_counts: Counter[str] = field(default_factory=Counter, repr=False)

    def messages_counts(self) -> Counter[str]:
        """messages_hash -> how many chat requests carried those messages (a copy)."""
        return Counter(self._messages_counts)

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready data (what ``GET /_stats`` returns); omits request_log."""
        return {
            "requests": self.requests,
            "by_status": {str(status): n for status, n in self.by_status.items()},
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "messages_counts": dict(self._messages_counts),
            # when each chat request arrived (server monotonic clock): rate checks from outside
            "chat_request_times": [entry.time for entry in self.request_log if entry.path.endswith("/chat/completions")],
        }


def messages_hash(messages: list[dict[str, Any]]) -> str:
    """The key the server files chat requests under: 16 hex chars of a sha256 of the messages."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _content_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _count_tokens(word_count: int) -> int:
    # About 4 tokens per 3 English words, which is what tiktoken gives on ordinary prose.
    return max(1, round(word_count * 4 / 3))


def default_answer(body: dict[str, Any]) -> str:
    """The answer when no responder is given.

    The first sentence of the first non-empty line after a ``Context:`` label in the last user
    message, if there is one; otherwise ``"Echo: "`` plus that message's first 200 characters.
    """
    last_user = next(
        (m for m in reversed(body["messages"]) if isinstance(m, dict) and m.get("role") == "user"),
        {},
    )
    text = _content_text(last_user.get("content"))
    if context := _CONTEXT.search(text):
        line = context.group(1).strip()
        sentence = _FIRST_SENTENCE.match(line)
        if answer := (sentence.group(0) if sentence else line).strip():
            return answer
    return "Echo: " + text[:200]


@functools.lru_cache(maxsize=65536)
def _word_vector(word: str) -> tuple[float, ...]:
    digest = hashlib.blake2b(word.encode(), digest_size=EMBEDDING_DIMENSIONS).digest()
    return tuple(byte / 127.5 - 1.0 for byte in digest)


def embed_text(text: str) -> list[float]:
    """The fake embedding of a text: a unit vector summing one pseudo-random vector per lowercased
    word, so equal bags of words embed equally and texts sharing words are more similar."""
    total = [0.0] * EMBEDDING_DIMENSIONS
    for word in _WORD.findall(text.lower()) or [""]:
        for i, value in enumerate(_word_vector(word)):
            total[i] += value
    norm = math.sqrt(sum(v * v for v in total)) or 1.0
    return [v / norm for v in total]


def _moderate(text: str) -> dict[str, Any]:
    hits = {FLAGGED_WORDS[w] for w in _WORD.findall(text.lower()) if w in FLAGGED_WORDS}
    return {
        "flagged": bool(hits),
        "categories": {c: c in hits for c in _MODERATION_CATEGORIES},
        "category_scores": {c: 0.95 if c in hits else 0.0001 for c in _MODERATION_CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
    }


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _invalid(param: str, message: str, code: str = "invalid_value") -> tuple[int, dict[str, Any]]:
    return 400, _error_body(message, "invalid_request_error", code, param)


def _check_chat(body: dict[str, Any], config: FakeConfig) -> tuple[int, dict[str, Any]] | None:
    """OpenAI's 400 for the invalid chat parameters evalkit can send, or None if the body is fine."""
    if not isinstance(body.get("model"), str):
        return _invalid("model", "you must provide a model parameter", "missing_required_parameter")
    messages = body.get("messages")
    if messages is None:
        return _invalid("messages", "Missing required parameter: 'messages'.", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        return _invalid("messages", "Invalid 'messages': expected a non-empty array.", "empty_array")
    if not all(isinstance(message, dict) for message in messages):
        return _invalid("messages", "Invalid 'messages': every message must be an object.", "invalid_type")
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        return _invalid("temperature", f"Invalid 'temperature': expected a number from 0 to 2, got {temperature!r}.")
    for param in ("max_tokens", "max_completion_tokens"):
        value = body.get(param)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return _invalid(param, f"Invalid '{param}': expected a positive integer, got {value!r}.")
    if config.default_temperature_only and temperature not in (None, 1):
        return _invalid("temperature", f"Unsupported value: 'temperature' does not support {temperature!r} with this "
                                       "model. Only the default (1) value is supported.")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in config.unsupported_response_formats:
        return _invalid("response_format", f"Invalid parameter: 'response_format' of type "
                                           f"'{response_format['type']}' is not supported with this model.")
    return None


def _inputs(body: dict[str, Any]) -> list[str] | None:
    """The ``input`` of an embeddings or moderations request as a list, or None if it is invalid."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    return None


_BAD_INPUT = _invalid("input", "Invalid 'input': expected a string or a non-empty array of strings.")


def _seconds(value: float) -> str:
    return f"{value:g}"


class FakeOpenAIServer:
    """The fake server, run by ``start()`` on a background thread with its own event loop.

    Use it as a context manager, or ``start()``/``stop()``. ``base_url`` is what the openai client
    wants (``http://127.0.0.1:PORT/v1``). ``stats`` counts what happened; ``reset_stats()`` clears
    it together with the fail_first and rpm_limit history and reseeds the fault draws.
    ``require_api_key`` makes every /v1 request without ``Authorization: Bearer <key>`` a 401.
    """

    def __init__(
        self,
        config: FakeConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Responder | None = None,
        require_api_key: str | None = None,
    ) -> None:
        self.config = config if config is not None else FakeConfig()
        self.host = host
        self._requested_port = port
        self.responder: Responder = responder or default_answer
        self._expected_auth = f"Bearer {require_api_key}" if require_api_key is not None else None
        self.stats = FakeStats()
        self._ids = itertools.count(1)
        self._fault_rng = random.Random(self.config.seed)
        # Separate from the fault draws so that adding jitter does not change which requests fail.
        self._jitter_rng = random.Random(self.config.seed + 1)
        self._accepted: deque[float] = deque()
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Start serving on a background thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.new_event_loop()
        listening = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # handed to start()'s caller below
                failure.append(exc)
                listening.set()
                loop.close()
                return
            listening.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        listening.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the socket and connections and end the background thread."""
        if self._thread is None or self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = self._runner = None
        self._port = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset_stats(self) -> None:
        """Forget all counters, the request log, fail_first and rpm_limit history; reseed."""
        self.stats = FakeStats()
        self._accepted = deque()
        self._fault_rng = random.Random(self.config.seed)
        self._jitter_rng = random.Random(self.config.seed + 1)

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_stats", self._get_stats)
        app.router.add_post("/_reset", self._reset)
        # No access log and no signal handlers: both cost time per request or fight the host
        # process. Handler cancellation lets hung requests die with their client's connection.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port, backlog=2048).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    # -- shared request handling -------------------------------------------------------------

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        self.stats.by_status[status] += 1
        return web.Response(
            status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
        )

    def _too_many_requests(self, retry_after: float, message: str) -> web.Response:
        seconds = _seconds(retry_after)
        headers = {"Retry-After": seconds, "x-ratelimit-reset-requests": seconds + "s"}
        return self._reply(429, _error_body(message, "requests", "rate_limit_exceeded"), headers)

    def _denied(self, request: web.Request) -> web.Response | None:
        if self._expected_auth is None or request.headers.get("Authorization") == self._expected_auth:
            return None
        return self._reply(401, _error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))

    async def _open(self, request: web.Request) -> dict[str, Any] | web.Response:
        """Count the request, check the API key and parse the body; a Response means reject."""
        self.stats.requests += 1
        if denied := self._denied(request):
            return denied
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._reply(
                400,
                _error_body("We could not parse the JSON body of your request.", "invalid_request_error", None),
            )
        return body

    def _unknown_model(self, model: str) -> web.Response:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return self._reply(404, _error_body(message, "invalid_request_error", "model_not_found"))

    def _over_rpm_limit(self) -> web.Response | None:
        limit = self.config.rpm_limit
        if limit is None:
            return None
        now = time.monotonic()
        accepted = self._accepted
        while accepted and accepted[0] <= now - _RATE_LIMIT_WINDOW:
            accepted.popleft()
        if len(accepted) < limit:
            accepted.append(now)
            return None
        self.stats.rate_limited += 1
        # A slot frees up when the limit-th most recent accepted request leaves the window.
        frees_at = (accepted[-limit] if limit > 0 else now) + _RATE_LIMIT_WINDOW
        return self._too_many_requests(
            max(1, math.ceil(frees_at - now)), f"Rate limit reached for requests: limit {limit} per min."
        )

    def _draw_fault(self) -> str | None:
        config = self.config
        draw = self._fault_rng.random()
        for kind, rate in (
            ("429", config.rate_429),
            ("500", config.rate_500),
            ("hang", config.rate_hang),
            ("malformed", config.rate_malformed),
            ("missing_usage", config.rate_missing_usage),
            ("drop", config.rate_drop),
        ):
            if draw < rate:
                return kind
            draw -= rate
        return None

    async def _answer(
        self,
        request: web.Request,
        digest: str | None,
        build: Callable[[], dict[str, Any]],
        events: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> web.StreamResponse:
        """Apply rate limits, scripted and random faults and latency, then reply with build(), or
        stream the events made from it."""
        if limited := self._over_rpm_limit():
            return limited
        config = self.config
        if digest is not None and self.stats._messages_counts[digest] <= config.fail_first:
            self.stats.faults["fail_first"] += 1
            return self._too_many_requests(0, "Rate limit reached for requests (fail_first).")
        fault = self._draw_fault()
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault == "429":
            return self._too_many_requests(config.retry_after, "Rate limit reached for requests.")
        if fault == "500":
            message = "The server had an error while processing your request. Sorry about that!"
            return self._reply(500, _error_body(message, "server_error", None))
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            # Never sent: aiohttp finds the transport closed and quietly treats it as a disconnect
            # (raising instead would log a traceback per drop).
            return web.Response()
        if fault == "hang":
            await asyncio.sleep(config.hang_seconds)
        delay = config.latency
        if config.latency_jitter:
            delay = max(0.0, delay + self._jitter_rng.uniform(-config.latency_jitter, config.latency_jitter))
        if delay:
            await asyncio.sleep(delay)
        if fault == "malformed":
            self.stats.by_status[200] += 1
            return web.Response(body=_MALFORMED_BODY, content_type="application/json")
        payload = build()
        if fault == "missing_usage":
            payload.pop("usage", None)
        if events is not None:
            return await self._stream(request, events(payload))
        return self._reply(200, payload)

    async def _stream(self, request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
        """Send ``events`` as server-sent events, then ``[DONE]``."""
        self.stats.by_status[200] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            name = f"event: {event['type']}\n" if "type" in event else ""
            await response.write(f"{name}data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- endpoints ---------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            # Rejected before the body was read (401) or unparsable (400): still logged, model unknown.
            self.stats.request_log.append(LoggedRequest(time.monotonic(), request.path, None, ""))
            return opened
        body = opened
        messages = body.get("messages")
        digest = messages_hash(messages) if isinstance(messages, list) else ""
        model = body.get("model")
        self.stats.request_log.append(
            LoggedRequest(time.monotonic(), request.path, model if isinstance(model, str) else None, digest)
        )
        if digest:
            self.stats._messages_counts[digest] += 1
        if invalid := _check_chat(body, self.config):
            return self._reply(*invalid)
        if model in self.config.unknown_models:
            return self._unknown_model(model)

        def build() -> dict[str, Any]:
            text = self.responder(body)
            prompt_tokens = _count_tokens(sum(len(_content_text(m.get("content")).split()) for m in messages))
            return {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.config.snapshots.get(model, model),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": self._usage(prompt_tokens, text),
            }

        return await self._reply_with(request, digest, build, self._chunks(body, "chat.completion.chunk"))

    async def _reply_with(
        self,
        request: web.Request,
        digest: str | None,
        build: Callable[[], dict[str, Any]],
        events: Callable[[dict[str, Any]], list[dict[str, Any]]] | None,
    ) -> web.StreamResponse:
        # _answer keeps its three-argument call for plain answers: tests wrap it with that signature.
        if events is None:
            return await self._answer(request, digest, build)
        return await self._answer(request, digest, build, events)

    def _usage(self, prompt_tokens: int, text: str, responses_api: bool = False) -> dict[str, Any]:
        completion_tokens = _count_tokens(len(text.split()))
        cached = min(self.config.cached_tokens, prompt_tokens)
        if responses_api:
            return {
                "input_tokens": prompt_tokens,
                "output_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }

    @staticmethod
    def _chunks(body: dict[str, Any], kind: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]] | None:
        """For a streamed chat or completions request, the chunks of an answer: a word per chunk,
        then the usage chunk if the request asked for it (and the answer has usage)."""
        if body.get("stream") is not True:
            return None
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunks(payload: dict[str, Any]) -> list[dict[str, Any]]:
            choice = payload["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            words = text.split(" ")
            head = {"id": payload["id"], "object": kind, "created": payload["created"], "model": payload["model"]}
            out = []
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                last = i == len(words) - 1
                delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
                part = {"delta": delta} if "message" in choice else {"text": piece, "logprobs": None}
                out.append({**head, "choices": [{"index": 0, **part, "finish_reason": "stop" if last else None}],
                            **({"usage": None} if with_usage else {})})
            if with_usage and "usage" in payload:
                out.append({**head, "choices": [], "usage": payload["usage"]})
            return out

        return chunks

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        body = opened
        model, prompt = body.get("model"), body.get("prompt")
        if not isinstance(model, str):
            return self._reply(*_invalid("model", "you must provide a model parameter", "missing_required_parameter"))
        if not isinstance(prompt, str):
            return self._reply(*_invalid("prompt", "Invalid 'prompt': expected a string."))
        if model in self.config.unknown_models:
            return self._unknown_model(model)

        def build() -> dict[str, Any]:
            text = self.responder({**body, "messages": [{"role": "user", "content": prompt}]})
            return {
                "id": f"cmpl-{next(self._ids)}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.config.snapshots.get(model, model),
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": self._usage(_count_tokens(len(prompt.split())), text),
            }

        return await self._reply_with(request, None, build, self._chunks(body, "text_completion"))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        body = opened
        model, given = body.get("model"), body.get("input")
        if not isinstance(model, str):
            return self._reply(*_invalid("model", "you must provide a model parameter", "missing_required_parameter"))
        if isinstance(given, str):
            messages = [{"role": "user", "content": given}]
        elif isinstance(given, list) and given and all(isinstance(m, dict) for m in given):
            messages = given
        else:
            return self._reply(*_invalid("input", "Invalid 'input': expected a string or a non-empty array."))
        if isinstance(body.get("instructions"), str):
            messages = [{"role": "system", "content": body["instructions"]}, *messages]
        if model in self.config.unknown_models:
            return self._unknown_model(model)

        def build() -> dict[str, Any]:
            text = self.responder({**body, "messages": messages})
            prompt_tokens = _count_tokens(sum(len(_content_text(m.get("content")).split()) for m in messages))
            number = next(self._ids)
            return {
                "id": f"resp_{number}",
                "object": "response",
                "created_at": int(time.time()),
                "model": self.config.snapshots.get(model, model),
                "status": "completed",
                "output": [{
                    "type": "message", "id": f"msg_{number}", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": self._usage(prompt_tokens, text, responses_api=True),
            }

        def events(payload: dict[str, Any]) -> list[dict[str, Any]]:
            # The real API's sequence, which the client's .stream() helper rebuilds the response from.
            message = payload["output"][0]
            text = message["content"][0]["text"]
            started = {**payload, "status": "in_progress", "output": [], "usage": None}
            where = {"output_index": 0, "content_index": 0}
            item = {"item_id": message["id"], **where, "logprobs": []}
            empty_part = {"type": "output_text", "text": "", "annotations": []}
            out = [{"type": "response.created", "response": started},
                   {"type": "response.output_item.added", "output_index": 0,
                    "item": {**message, "status": "in_progress", "content": []}},
                   {"type": "response.content_part.added", "item_id": message["id"], **where, "part": empty_part}]
            out += [{"type": "response.output_text.delta", "delta": word + " ", **item} for word in text.split(" ")[:-1]]
            out.append({"type": "response.output_text.delta", "delta": text.split(" ")[-1], **item})
            out += [{"type": "response.output_text.done", "text": text, **item},
                    {"type": "response.content_part.done", "item_id": message["id"], **where,
                     "part": message["content"][0]},
                    {"type": "response.output_item.done", "output_index": 0, "item": message},
                    {"type": "response.completed", "response": payload}]
            return [{**event, "sequence_number": i} for i, event in enumerate(out)]

        return await self._reply_with(request, None, build, events if body.get("stream") is True else None)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        body = opened
        model = body.get("model")
        if not isinstance(model, str):
            return self._reply(*_invalid("model", "you must provide a model parameter", "missing_required_parameter"))
        texts = _inputs(body)
        if texts is None:
            return self._reply(*_BAD_INPUT)
        if model in self.config.unknown_models:
            return self._unknown_model(model)
        # The openai client asks for base64 (packed little-endian float32) unless told otherwise.
        as_base64 = body.get("encoding_format") == "base64"

        def build() -> dict[str, Any]:
            data = []
            for index, text in enumerate(texts):
                vector: Any = embed_text(text)
                if as_base64:
                    vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIMENSIONS}f", *vector)).decode()
                data.append({"object": "embedding", "index": index, "embedding": vector})
            tokens = sum(_count_tokens(len(text.split())) for text in texts)
            return {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }

        return await self._answer(request, None, build)

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        body = opened
        texts = _inputs(body)
        if texts is None:
            return self._reply(*_BAD_INPUT)
        model = body.get("model", MODERATION_MODEL)
        if model in self.config.unknown_models:
            return self._unknown_model(model)

        def build() -> dict[str, Any]:
            return {"id": f"modr-{next(self._ids)}", "model": model, "results": [_moderate(t) for t in texts]}

        return await self._answer(request, None, build)

    async def _models(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        if denied := self._denied(request):
            return denied
        snapshots = self.config.snapshots
        names = dict.fromkeys([*snapshots, *snapshots.values(), *_OTHER_MODELS])
        return self._reply(
            200,
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "system"} for name in names],
            },
        )

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.Response(status=204)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = FakeConfig()
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.testing.fake_openai",
        description="Serve a fake OpenAI-compatible API until killed. See FakeConfig for the options.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--require-api-key", default=None)
    for name in ("latency", "latency_jitter", "rate_429", "rate_500", "rate_hang", "rate_malformed",
                 "rate_missing_usage", "rate_drop", "retry_after", "hang_seconds"):  # fmt: skip
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--fail-first", type=int, default=defaults.fail_first)
    parser.add_argument("--rpm-limit", type=int, default=None)
    parser.add_argument(
        "--snapshot", action="append", default=[], metavar="ALIAS=SNAPSHOT", help="add or override a snapshot"
    )
    parser.add_argument("--unknown-model", action="append", default=[], help="another model name to 404")
    parser.add_argument(
        "--responder", type=_import_responder, default=None, metavar="MODULE:FUNCTION",
        help="answer chat requests with this function, e.g. evalkit.testing.fake_judge:judge_responder",
    )
    return parser.parse_args(argv)


def _import_responder(spec: str) -> Responder:
    """The function named ``module:function`` (the module found on ``sys.path``)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise argparse.ArgumentTypeError(f"expected MODULE:FUNCTION, got {spec!r}")
    try:
        responder = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot import {spec!r}: {exc}") from None
    if not callable(responder):
        raise argparse.ArgumentTypeError(f"{spec!r} is not a function")
    return responder


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground; prints ``listening on <base_url>`` once it accepts."""
    args = _parse_args(argv)
    config = FakeConfig(
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        seed=args.seed,
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_hang=args.rate_hang,
        rate_malformed=args.rate_malformed,
        rate_missing_usage=args.rate_missing_usage,
        rate_drop=args.rate_drop,
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        fail_first=args.fail_first,
        rpm_limit=args.rpm_limit,
    )
    config.snapshots.update(pair.split("=", 1) for pair in args.snapshot)
    config.unknown_models.update(args.unknown_model)
    server = FakeOpenAIServer(
        config, host=args.host, port=args.port, responder=args.responder, require_api_key=args.require_api_key
    )
    server.start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        threading.Event().wait()  # the server runs on its own thread; SIGTERM or Ctrl-C ends us
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
