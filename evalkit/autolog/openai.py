"""``ek.openai.autolog()``: every call of the official openai client, recorded without touching
the application.

It patches ``create`` of chat completions, completions, embeddings and responses, sync and async,
streaming included, and ``parse`` of chat completions and responses (structured outputs), which
posts its request without going through ``create``. The ``.stream()`` helpers of chat completions
and responses call ``create(stream=True)``, so their streams are recorded (once) by that patch. Each call becomes a row of the run's calls table (``openai/calls/``, read it
with :func:`load_calls`): the endpoint, the model the request named and the model the response
named, prompt, completion and cached tokens, latency, cost and status. Cost is priced on the
response's model (an Azure deployment name is not a model), with cached input tokens at their own
price, from evalkit's price table; a call whose usage or price is unknown has no cost rather than
a wrong one, and is counted in ``openai/unpriced_calls``. A stream's usage comes from its last
chunk: for chat and completions streams evalkit asks for it (``stream_options.include_usage``)
when the caller did not, and hides that extra chunk from the caller.

Calls go to the active run of the caller's context (``ek.start_run``); with none, to a run the
autolog starts and ends at exit or at ``autolog(disable=True)`` (``no_active_run="start"``), or
nowhere (``"skip"``). Prompts and answers are logged only with ``log_texts=True``; API keys and
headers never are. Nothing here ever breaks the caller's request: a failure inside the autolog is
logged as a warning and the call goes on. Calls evalkit makes itself (``evaluate()``'s model,
judges and embeddings) are not recorded: evaluate() already accounts for them.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from evalkit.autolog.calls import CallLog, CallRecord, load_calls
from evalkit.errors import InvalidArgument
from evalkit.inference.own_calls import is_own_call
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.base import Usage
from evalkit.redaction import redact
from evalkit.tracking import hooks

__all__ = ["autolog", "load_calls"]

PREFIX = "openai"
ERROR_LIMIT = 1000
_log = logging.getLogger(__name__)

# (module, class, method, endpoint name) of every patched method; the Async* classes' are coroutines.
_TARGETS = tuple(
    (module, prefix + cls, method, endpoint)
    for module, cls, methods, endpoint in (
        ("openai.resources.chat.completions", "Completions", ("create", "parse"), "chat.completions"),
        ("openai.resources.completions", "Completions", ("create",), "completions"),
        ("openai.resources.embeddings", "Embeddings", ("create",), "embeddings"),
        ("openai.resources.responses", "Responses", ("create", "parse"), "responses"),
    )
    for prefix in ("", "Async")
    for method in methods
)
# Endpoints whose streams report usage only when asked to.
_ASKS_FOR_STREAM_USAGE = {"chat.completions", "completions"}


@dataclass
class _Config:
    log_texts: bool
    no_active_run: str
    prices: PriceTable
    log: CallLog


class _State:
    """The patches in place and the autolog's own run (when it had to start one)."""

    def __init__(self) -> None:
        self.config: _Config | None = None
        self.originals: dict[tuple[type, str], Callable[..., Any]] = {}
        self.own_run_id: str | None = None
        self.lock = threading.Lock()


_state = _State()


def autolog(
    *,
    disable: bool = False,
    log_texts: bool = False,
    no_active_run: Literal["start", "skip"] = "start",
    prices: PriceTable | dict[str, dict[str, float]] | str | None = None,
    batch_size: int = 200,
) -> None:
    """Record every openai client call into the active run (see the module docstring).

    ``log_texts`` adds each call's input (messages, prompt, input) and output text to its row
    (credentials are masked). ``no_active_run`` says what happens to calls made with no active
    run: ``"start"`` logs them into a run the autolog starts (ended at exit or on disable),
    ``"skip"`` does not record them. ``prices`` overrides evalkit's price table (see
    :meth:`PriceTable.load`). Rows are written every ``batch_size`` calls, after 10 s, and when
    the run ends. ``disable=True`` removes the patches, writes what is waiting and ends the
    autolog's own run. Calling it again changes the settings.
    """
    if disable:
        _disable()
        return
    if no_active_run not in ("start", "skip"):
        raise InvalidArgument(f"no_active_run must be 'start' or 'skip', got {no_active_run!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(f"batch_size must be a positive integer, got {batch_size!r}")
    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    with _state.lock:
        previous = _state.config
        _state.config = _Config(log_texts, no_active_run, table, CallLog(PREFIX, batch_size))
        if previous is not None:
            previous.log.flush()
        _patch()
    hooks.add_run_end_hook(_run_ending)


def _disable() -> None:
    with _state.lock:
        for (owner, name), original in _state.originals.items():
            setattr(owner, name, original)
        _state.originals.clear()
        config, _state.config = _state.config, None
    hooks.remove_run_end_hook(_run_ending)
    if config is not None:
        config.log.flush()
        _end_own_run(config)


def _patch() -> None:
    for module_name, class_name, method, endpoint in _TARGETS:
        owner = getattr(importlib.import_module(module_name), class_name)
        original = getattr(owner, method, None)
        if (owner, method) in _state.originals or original is None:  # parse: absent from older clients
            continue
        _state.originals[(owner, method)] = original
        # Not inspect.iscoroutinefunction: openai's argument checks wrap its coroutines in plain functions.
        setattr(owner, method, _wrap(original, endpoint, class_name.startswith("Async")))


def _run_ending(run_id: str) -> None:
    config = _state.config
    if config is not None:
        config.log.flush(run_id, forget=True)
    if run_id == _state.own_run_id:
        _state.own_run_id = None


def _target_run(config: _Config) -> str | None:
    """The run this call goes to, or None to skip it."""
    from evalkit.tracking import fluent
    from evalkit.tracking.client import TrackingClient

    run = fluent.active_run()
    if run is not None:
        return run.info.run_id
    if config.no_active_run == "skip":
        return None
    with _state.lock:
        if _state.own_run_id is None:
            client = TrackingClient()
            run = client.create_run(
                fluent.active_experiment_id(client), tags={"evalkit.source": "autolog.openai"}
            )
            _state.own_run_id = run.info.run_id
        return _state.own_run_id


def _end_own_run(config: _Config) -> None:
    run_id = _state.own_run_id
    if run_id is None:
        return
    from evalkit.tracking.client import TrackingClient

    try:
        TrackingClient().set_terminated(run_id)  # the run-end hook writes its last rows first
    except Exception:  # noqa: BLE001 - at exit or on disable: say so, do not raise
        _log.warning("evalkit autolog: could not end its run %s", run_id, exc_info=True)
    _state.own_run_id = None


@atexit.register
def _at_exit() -> None:
    config = _state.config
    if config is not None:
        config.log.flush()
        _end_own_run(config)


# ---- one call -----------------------------------------------------------------------------


class _Call:
    """What is known about one call while it runs; every method is safe to call from a patch
    (errors are caught by the caller of these methods)."""

    def __init__(self, config: _Config, endpoint: str, kwargs: dict[str, Any]) -> None:
        self.config = config
        self.endpoint = endpoint
        self.kwargs = kwargs
        self.requested_model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else None
        self.stream = kwargs.get("stream") is True
        self.hide_usage_chunk = False
        if self.stream and endpoint in _ASKS_FOR_STREAM_USAGE:
            options = kwargs.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                self.kwargs = {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}
                self.hide_usage_chunk = True
        self.started_ms = int(time.time() * 1000)
        self.start = time.perf_counter()
        self.model: str | None = None
        self.usage: Any = None
        self.texts: list[str] = []

    def record(self, status: str, error: str | None = None, output: str | None = None) -> None:
        config = self.config
        run_id = _target_run(config)
        if run_id is None:
            return
        usage = _usage(self.usage)
        model = self.model or self.requested_model
        cost = config.prices.cost(usage, model) if usage is not None and model else None
        config.log.add(
            run_id,
            CallRecord(
                endpoint=self.endpoint,
                requested_model=self.requested_model,
                model=self.model,
                stream=self.stream,
                status=status,
                error=error,
                prompt_tokens=usage.input_tokens if usage else None,
                completion_tokens=usage.output_tokens if usage else None,
                cached_tokens=usage.cached_input_tokens if usage else None,
                cost_usd=cost,
                latency_s=time.perf_counter() - self.start,
                started_at_ms=self.started_ms,
                input=_input_text(self.kwargs) if config.log_texts else None,
                output=redact(output) if config.log_texts and output is not None else None,
            ),
        )

    def failed(self, exc: BaseException) -> None:
        self.record("error", redact(f"{type(exc).__name__}: {exc}")[:ERROR_LIMIT])

    def finished(self, response: Any) -> None:
        self.model = _str_attr(response, "model")
        self.usage = getattr(response, "usage", None)
        self.record("ok", output=_output_text(self.endpoint, response) if self.config.log_texts else None)

    def chunk(self, item: Any) -> bool:
        """Note what a stream item tells; False when the item must be hidden from the caller."""
        if self.endpoint == "responses":
            response = getattr(item, "response", None)
            if response is not None:
                self.model = _str_attr(response, "model") or self.model
                self.usage = getattr(response, "usage", None) or self.usage
            if self.config.log_texts and getattr(item, "type", None) == "response.output_text.delta":
                self.texts.append(getattr(item, "delta", "") or "")
            return True
        self.model = _str_attr(item, "model") or self.model
        usage = getattr(item, "usage", None)
        choices = getattr(item, "choices", None) or []
        if usage is not None:
            self.usage = usage
            if self.hide_usage_chunk and not choices:
                return False
        if self.config.log_texts and choices:
            piece = getattr(getattr(choices[0], "delta", None), "content", None) or getattr(choices[0], "text", None)
            if isinstance(piece, str):
                self.texts.append(piece)
        return True

    def stream_ended(self, exc: BaseException | None) -> None:
        if exc is None:
            self.record("ok", output="".join(self.texts))
        else:
            self.failed(exc)


def _safely(what: str, action: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    try:
        return action(*args)
    except Exception:  # noqa: BLE001 - an autolog failure must never break the user's call
        _log.warning("evalkit autolog: %s failed; the call itself is unaffected", what, exc_info=True)
        return default


def _begin(endpoint: str, kwargs: dict[str, Any]) -> _Call | None:
    config = _state.config
    if config is None or is_own_call():
        return None
    return _safely("starting a call record", _Call, config, endpoint, kwargs)


def _rejected_option(call: _Call, exc: BaseException) -> bool:
    # A compatible server that refuses stream_options gets the caller's request as it was.
    return call.hide_usage_chunk and "stream_options" in str(exc)


async def _recorded(call: _Call, send: Callable[[dict[str, Any]], Any], kwargs: dict[str, Any], watch: Any) -> Any:
    """One call, recorded: what the sync and async patches share. ``send(kwargs)`` makes the
    request (a coroutine for both: the sync patch's never suspends); ``watch`` wraps a stream."""
    try:
        try:
            result = await send(call.kwargs)
        except Exception as exc:
            if not _rejected_option(call, exc):
                raise
            call.kwargs, call.hide_usage_chunk = kwargs, False
            result = await send(kwargs)
    except BaseException as exc:
        _safely("recording a failed call", call.failed, exc)
        raise
    if call.stream and hasattr(result, "_iterator"):
        _safely("watching a stream", lambda: setattr(result, "_iterator", watch(call, result._iterator)))
    else:
        _safely("recording a call", call.finished, result)
    return result


def _finish_now(coroutine: Any) -> Any:
    """The value of a coroutine that never suspends (the sync patch's), without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("evalkit autolog: a synchronous call suspended")  # not reached: nothing in it awaits


def _wrap(original: Callable[..., Any], endpoint: str, is_async: bool) -> Callable[..., Any]:
    if is_async:
        @functools.wraps(original)
        async def patched_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _begin(endpoint, kwargs)
            if call is None:
                return await original(self, *args, **kwargs)

            async def send(given: dict[str, Any]) -> Any:
                return await original(self, *args, **given)

            return await _recorded(call, send, kwargs, _awatch)

        return patched_async

    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(endpoint, kwargs)
        if call is None:
            return original(self, *args, **kwargs)

        async def send(given: dict[str, Any]) -> Any:
            return original(self, *args, **given)

        return _finish_now(_recorded(call, send, kwargs, _watch))

    return patched


def _watch(call: _Call, items: Iterator[Any]) -> Iterator[Any]:
    """The stream's items as the caller would have seen them, noting usage on the way; the call
    is recorded when the stream ends, fails, or is closed early."""
    error: BaseException | None = None
    try:
        for item in items:
            if _safely("reading a stream item", call.chunk, item, default=True):
                yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        _safely("recording a stream", call.stream_ended, error)


async def _awatch(call: _Call, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    error: BaseException | None = None
    try:
        async for item in items:
            if _safely("reading a stream item", call.chunk, item, default=True):
                yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        _safely("recording a stream", call.stream_ended, error)


# ---- reading responses --------------------------------------------------------------------


def _str_attr(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(usage: Any) -> Usage | None:
    """Tokens of a chat/completions (prompt_/completion_tokens), embeddings (prompt_tokens) or
    responses (input_/output_tokens) usage object."""
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens", None)
    if prompt is not None:
        details = getattr(usage, "prompt_tokens_details", None)
        return Usage(_int(prompt), _int(getattr(usage, "completion_tokens", 0)),
                     _int(getattr(details, "cached_tokens", 0)))
    prompt = getattr(usage, "input_tokens", None)
    if prompt is None:
        return None
    details = getattr(usage, "input_tokens_details", None)
    return Usage(_int(prompt), _int(getattr(usage, "output_tokens", 0)), _int(getattr(details, "cached_tokens", 0)))


def _input_text(kwargs: dict[str, Any]) -> str | None:
    for key in ("messages", "prompt", "input"):
        if key in kwargs:
            value = kwargs[key]
            text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
            instructions = kwargs.get("instructions")
            if isinstance(instructions, str):
                text = f"{instructions}\n\n{text}"
            return redact(text)
    return None


def _output_text(endpoint: str, response: Any) -> str | None:
    if endpoint == "responses":
        return _str_attr(response, "output_text")
    choices = getattr(response, "choices", None)
    if not choices:
        return None
    if endpoint == "chat.completions":
        return getattr(getattr(choices[0], "message", None), "content", None)
    return getattr(choices[0], "text", None)
