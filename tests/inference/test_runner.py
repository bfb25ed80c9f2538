"""The runner with in-process fake models: retries, budgets, timeouts, concurrency, cache, rates."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from evalkit.errors import PermanentModelError, TransientModelError
from evalkit.inference.cache import ResponseCache
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.base import ModelResponse, Usage
from evalkit.inference.providers.callables import (
    BatchCallableModel,
    CallableModel,
    batch,
)
from evalkit.inference.providers.resolve import build_model, parse_model_uri
from evalkit.inference.runner.ratelimit import PacingLimiter, RateLimits
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.inference.runner.runner import Runner, RunnerConfig
from evalkit.inference.tokens import count_message_tokens, count_tokens
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer, messages_hash

PRICES = PriceTable.load({"m": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
USAGE = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4)
# 6 uncached input tokens at $1/M, 4 cached at $0.5/M, 5 output at $2/M.
USAGE_COST = (6 * 1.0 + 4 * 0.5 + 5 * 2.0) / 1e6
SNAPSHOT = "m-2024-01-01"


def fast(**overrides: Any) -> RunnerConfig:
    return RunnerConfig(**{"backoff_base": 0.001, "backoff_max": 0.01, **overrides})


def jobs(n: int, prefix: str = "question") -> list[RowJob]:
    return [RowJob(i, messages=[{"role": "user", "content": f"{prefix} {i}"}], input=f"{prefix} {i}") for i in range(n)]


def answer(messages, params) -> ModelResponse:
    return ModelResponse(text="answer to " + messages[-1]["content"], usage=USAGE, model_snapshot=SNAPSHOT)


class FakeModel:
    """A ChatModel whose every call is decided by ``behaviour(call, messages, params)``, where
    ``call`` counts this row's calls from 1. ``behaviour`` returns a ModelResponse or raises."""

    base_url = None

    def __init__(
        self,
        behaviour: Callable[[int, list, dict], ModelResponse] = lambda call, messages, params: answer(messages, params),
        uri: str = "fake:/m",
        model: str = "m",
        delay: float = 0.0,
    ) -> None:
        self.behaviour = behaviour
        self.uri = uri
        self.model = model
        self.delay = delay
        self.calls: list[tuple[float, str]] = []  # (time.monotonic(), content) of every call
        self.per_row: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def generate(self, messages, params) -> ModelResponse:
        content = messages[-1]["content"]
        self.calls.append((time.monotonic(), content))
        self.per_row[content] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self.behaviour(self.per_row[content], messages, params)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


def run(model, rows, config=None, params=None, prices=PRICES, cache=None) -> tuple[Runner, dict[int, RowOutcome]]:
    runner = Runner(model, params or {}, config or fast(), prices, cache=cache)
    outcomes = asyncio.run(runner.run(rows))
    return runner, outcomes


# ---- answering ---------------------------------------------------------------------------------


def test_every_row_is_answered_with_latency_usage_cost_and_snapshot():
    model = FakeModel(delay=0.005)
    seen: list[int] = []
    runner = Runner(model, {"temperature": 0}, fast(concurrency=4), PRICES, on_outcome=lambda o: seen.append(o.index))
    outcomes = asyncio.run(runner.run(jobs(6)))

    assert sorted(outcomes) == list(range(6))
    assert sorted(seen) == list(range(6))
    for i, outcome in outcomes.items():
        assert outcome.status is RowStatus.OK
        assert outcome.output == f"answer to question {i}"
        assert outcome.error is None and outcome.error_type is None
        assert outcome.latency_s > 0
        assert outcome.total_latency_s >= outcome.latency_s
        assert outcome.attempts == 1
        assert outcome.cached is False
        assert outcome.usage == USAGE
        assert outcome.usage_estimated is False
        assert outcome.cost_usd == pytest.approx(USAGE_COST)
        assert outcome.model_snapshot == SNAPSHOT
    assert runner.snapshot == SNAPSHOT
    assert runner.spent == pytest.approx(6 * USAGE_COST)
    assert runner.requests_sent == 6
    assert runner.stopped_reason is None
    assert len(model.calls) == 6


def test_missing_usage_is_estimated_with_tiktoken():
    model = FakeModel(lambda call, messages, params: ModelResponse(text="four, of course"))
    rows = jobs(2)
    runner, outcomes = run(model, rows)
    for job in rows:
        outcome = outcomes[job.index]
        assert outcome.status is RowStatus.OK
        assert outcome.usage_estimated is True
        assert outcome.input_tokens == count_message_tokens(job.messages, "m") > 0
        assert outcome.output_tokens == count_tokens("four, of course", "m") > 0
        assert outcome.cached_input_tokens == 0
        expected = (outcome.input_tokens * 1.0 + outcome.output_tokens * 2.0) / 1e6
        assert outcome.cost_usd == pytest.approx(expected)
    assert runner.snapshot is None


# ---- retries -----------------------------------------------------------------------------------


def test_transient_errors_are_retried_until_an_answer():
    def flaky(call, messages, params):
        if call <= 2:
            raise TransientModelError(f"HTTP 503 (try {call})", status=503)
        return answer(messages, params)

    model = FakeModel(flaky)
    _, outcomes = run(model, jobs(3), fast(max_attempts=3))
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    assert [outcomes[i].attempts for i in range(3)] == [3, 3, 3]
    assert all(o.total_latency_s >= o.latency_s for o in outcomes.values())
    assert len(model.calls) == 9


def test_transient_errors_fail_the_row_after_max_attempts_and_no_row_is_dropped():
    def always(call, messages, params):
        raise TransientModelError(f"HTTP 500 on try {call}", status=500)

    model = FakeModel(always)
    runner, outcomes = run(model, jobs(3), fast(max_attempts=4))
    assert sorted(outcomes) == [0, 1, 2]
    for outcome in outcomes.values():
        assert outcome.status is RowStatus.FAILED
        assert outcome.error == "HTTP 500 on try 4"  # the last error, not the first
        assert outcome.error_type == "transient"
        assert outcome.attempts == 4
        assert outcome.output is None and outcome.cost_usd is None
    assert len(model.calls) == 12
    assert runner.spent == 0.0


def test_retry_after_is_honoured():
    def slow_down(call, messages, params):
        if call == 1:
            raise TransientModelError("HTTP 429", retry_after=0.05, status=429)
        return answer(messages, params)

    model = FakeModel(slow_down)
    _, outcomes = run(model, jobs(1), fast(max_attempts=3))
    assert outcomes[0].status is RowStatus.OK and outcomes[0].attempts == 2
    (first, _), (second, _) = model.calls
    assert second - first >= 0.05
    assert outcomes[0].total_latency_s >= 0.05


def test_retry_after_pauses_the_other_rows_too():
    def slow_down(call, messages, params):
        if messages[-1]["content"] == "question 0" and call == 1:
            raise TransientModelError("HTTP 429", retry_after=0.1, status=429)
        return answer(messages, params)

    model = FakeModel(slow_down)
    _, outcomes = run(model, jobs(3), fast(concurrency=1))
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    # question 0 was refused first; every later call waited out the pause it asked for.
    start = model.calls[0][0]
    assert model.calls[0][1] == "question 0"
    assert all(t - start >= 0.1 for t, _ in model.calls[1:])


def test_the_run_wide_retry_budget_caps_retries():
    def always(call, messages, params):
        raise TransientModelError("HTTP 503", status=503)

    model = FakeModel(always)
    _, outcomes = run(model, jobs(10), fast(retry_budget=3, max_attempts=6))
    assert len(model.calls) == 10 + 3
    assert sum(o.attempts for o in outcomes.values()) == 13
    assert len(outcomes) == 10
    assert all(o.status is RowStatus.FAILED and o.error_type == "transient" for o in outcomes.values())


def test_a_zero_retry_budget_means_one_try_per_row():
    def always(call, messages, params):
        raise TransientModelError("HTTP 503", status=503)

    model = FakeModel(always)
    _, outcomes = run(model, jobs(4), fast(retry_budget=0))
    assert len(model.calls) == 4
    assert all(o.attempts == 1 for o in outcomes.values())


# ---- permanent errors and exceptions -----------------------------------------------------------


def test_a_permanent_error_on_the_first_answer_aborts_the_run():
    def refused(call, messages, params):
        raise PermanentModelError("model 'm' not found at http://x/v1 (HTTP 404)", status=404)

    model = FakeModel(refused)
    recorded: list[RowOutcome] = []
    runner = Runner(model, {}, fast(concurrency=1), PRICES, on_outcome=recorded.append)
    with pytest.raises(PermanentModelError, match="model 'm' not found"):
        asyncio.run(runner.run(jobs(10)))
    assert 1 <= len(model.calls) < 10
    assert recorded == []  # nothing recorded: the run failed as a whole


def test_a_permanent_error_after_successes_fails_only_that_row():
    def fourth_refused(call, messages, params):
        if messages[-1]["content"] == "question 3":
            raise PermanentModelError("HTTP 400: content policy", status=400)
        return answer(messages, params)

    model = FakeModel(fourth_refused, delay=0.002)
    _, outcomes = run(model, jobs(8), fast(concurrency=1))
    assert len(outcomes) == 8
    assert outcomes[3].status is RowStatus.FAILED
    assert outcomes[3].error_type == "permanent"
    assert outcomes[3].error == "HTTP 400: content policy"
    assert outcomes[3].attempts == 1  # never retried
    assert all(outcomes[i].status is RowStatus.OK for i in range(8) if i != 3)
    assert len(model.calls) == 8


def broken_callable(text: str) -> str:
    if text.endswith("2"):
        raise ValueError("cannot handle row two")
    return text.upper()


def test_a_callable_raising_fails_that_row_as_an_exception():
    _, outcomes = run(CallableModel(broken_callable), jobs(4))
    assert outcomes[2].status is RowStatus.FAILED
    assert outcomes[2].error_type == "exception"
    assert outcomes[2].error == "ValueError: cannot handle row two"
    assert outcomes[2].attempts == 1
    assert [outcomes[i].output for i in (0, 1, 3)] == ["QUESTION 0", "QUESTION 1", "QUESTION 3"]


def test_the_per_request_timeout_is_a_transient_error():
    model = FakeModel(delay=1.0)
    started = time.monotonic()
    _, outcomes = run(model, jobs(1), fast(timeout=0.05, max_attempts=2))
    elapsed = time.monotonic() - started
    outcome = outcomes[0]
    assert outcome.status is RowStatus.FAILED
    assert outcome.error_type == "transient"
    assert outcome.attempts == 2
    assert "timeout" in outcome.error and "0.05" in outcome.error
    assert len(model.calls) == 2
    assert elapsed < 0.9  # cut at the timeout, never waited for the 1 s answer


# ---- concurrency -------------------------------------------------------------------------------


def test_concurrency_is_bounded():
    model = FakeModel(delay=0.01)
    _, outcomes = run(model, jobs(12), fast(concurrency=3))
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    assert model.max_in_flight == 3


# ---- cost budget -------------------------------------------------------------------------------


def test_max_cost_usd_stops_the_run_and_skips_the_rest():
    max_tokens = 50

    def exact(call, messages, params):
        # Report what the runner estimates, so ~3 rows fit the budget exactly.
        return ModelResponse("ok", Usage(count_message_tokens(messages, "m"), params["max_tokens"]), SNAPSHOT)

    rows = jobs(10)
    per_row = (count_message_tokens(rows[0].messages, "m") * 1.0 + max_tokens * 2.0) / 1e6
    assert all(count_message_tokens(j.messages, "m") == count_message_tokens(rows[0].messages, "m") for j in rows)
    budget = 3.5 * per_row
    model = FakeModel(exact)
    runner, outcomes = run(model, rows, fast(concurrency=1, max_cost_usd=budget), params={"max_tokens": max_tokens})

    answered = [o for o in outcomes.values() if o.status is RowStatus.OK]
    skipped = [o for o in outcomes.values() if o.status is RowStatus.SKIPPED]
    assert len(outcomes) == 10
    assert sorted(o.index for o in answered) == [0, 1, 2]
    assert sorted(o.index for o in skipped) == list(range(3, 10))
    assert all(o.error_type == "budget" and "max_cost_usd" in o.error for o in skipped)
    assert all(o.attempts == 0 and o.output is None for o in skipped)
    assert sum(o.cost_usd for o in answered) == pytest.approx(3 * per_row)
    assert sum(o.cost_usd for o in answered) <= budget
    assert runner.spent <= budget
    assert runner.stopped_reason == "max_cost_usd"
    assert len(model.calls) == 3  # skipped rows were never sent


def test_no_request_is_sent_once_the_spend_is_over_max_cost_usd():
    def verbose(call, messages, params):  # no max_tokens: the model answers at length
        return ModelResponse("long answer", Usage(count_message_tokens(messages, "m"), 5000), SNAPSHOT)

    rows = jobs(20)
    estimate_256 = (count_message_tokens(rows[0].messages, "m") * 1.0 + 256 * 2.0) / 1e6
    budget = 10.5 * estimate_256  # ~$0.0055, while one real answer costs ~$0.01
    model = FakeModel(verbose, delay=0.002)
    runner, outcomes = run(model, rows, fast(concurrency=1, max_cost_usd=budget))
    # The first answer alone is over budget; at most one more may already be on its way.
    assert len(model.calls) <= 2, f"{len(model.calls)} requests sent, spent ${runner.spent:.4f} of ${budget:.4f}"
    assert runner.stopped_reason == "max_cost_usd"
    assert len(outcomes) == 20
    assert all(o.status is RowStatus.SKIPPED for o in outcomes.values() if o.index >= 2)


def test_estimate_cost_for_priced_and_unpriced_models():
    rows = jobs(5)
    priced = Runner(FakeModel(), {"max_tokens": 100}, fast(), PRICES)
    expected = sum(count_message_tokens(j.messages, "m") * 1.0 + 100 * 2.0 for j in rows) / 1e6
    assert priced.estimate_cost(rows) == pytest.approx(expected)
    assert priced.estimate_cost(rows) > 0

    unpriced = Runner(FakeModel(uri="fake:/zz-unpriced", model="zz-unpriced"), {}, fast(), PRICES)
    assert unpriced.estimate_cost(rows) is None


# ---- cache -------------------------------------------------------------------------------------


def test_a_second_run_is_answered_from_the_cache(tmp_path):
    rows = jobs(4)
    with ResponseCache(tmp_path / "c.db", "on") as cache:
        first_model = FakeModel(delay=0.003)
        _, first = run(first_model, rows, params={"temperature": 0}, cache=cache)
        assert len(first_model.calls) == 4

        second_model = FakeModel()
        runner, second = run(second_model, rows, params={"temperature": 0}, cache=cache)
        assert second_model.calls == []
        assert runner.requests_sent == 0
        assert runner.spent == 0.0  # a cached answer is not billed again
        for i in range(4):
            assert second[i].status is RowStatus.OK
            assert second[i].cached is True
            assert second[i].output == first[i].output
            assert second[i].latency_s == first[i].latency_s
            assert second[i].cost_usd == first[i].cost_usd
            assert second[i].usage == first[i].usage
            assert second[i].model_snapshot == SNAPSHOT

    # Committed to disk: a new cache on the same file still answers.
    with ResponseCache(tmp_path / "c.db", "on") as reopened:
        third_model = FakeModel()
        _, third = run(third_model, rows, params={"temperature": 0}, cache=reopened)
        assert third_model.calls == [] and all(o.cached for o in third.values())


def test_other_params_or_another_model_miss_the_cache(tmp_path):
    rows = jobs(3)
    with ResponseCache(tmp_path / "c.db", "on") as cache:
        run(FakeModel(), rows, params={"temperature": 0}, cache=cache)

        other_params = FakeModel()
        _, outcomes = run(other_params, rows, params={"temperature": 1}, cache=cache)
        assert len(other_params.calls) == 3 and not any(o.cached for o in outcomes.values())

        other_model = FakeModel(uri="fake:/m2")
        _, outcomes = run(other_model, rows, params={"temperature": 0}, cache=cache)
        assert len(other_model.calls) == 3 and not any(o.cached for o in outcomes.values())

        other_endpoint = FakeModel()
        other_endpoint.base_url = "http://other.test/v1"
        run(other_endpoint, rows, params={"temperature": 0}, cache=cache)
        assert len(other_endpoint.calls) == 3


def test_failed_rows_are_not_cached(tmp_path):
    def always(call, messages, params):
        raise TransientModelError("HTTP 503", status=503)

    rows = jobs(2)
    with ResponseCache(tmp_path / "c.db", "on") as cache:
        run(FakeModel(always), rows, fast(max_attempts=1), cache=cache)
        retry = FakeModel()
        _, outcomes = run(retry, rows, cache=cache)
        assert len(retry.calls) == 2
        assert all(o.status is RowStatus.OK and not o.cached for o in outcomes.values())


def test_callable_models_are_never_cached(tmp_path):
    calls: list[str] = []

    def fn(text: str) -> str:
        calls.append(text)
        return text[::-1]

    rows = jobs(3)
    with ResponseCache(tmp_path / "c.db", "on") as cache:
        for _ in range(2):
            runner, outcomes = run(CallableModel(fn), rows, cache=cache)
            assert runner.cache is None
            assert not any(o.cached for o in outcomes.values())
        assert cache.writes == 0
    assert len(calls) == 6


# ---- batch callables ---------------------------------------------------------------------------


def test_a_batch_callable_is_called_once_per_batch():
    sizes: list[int] = []

    def fn(inputs: list[str]) -> list[str]:
        sizes.append(len(inputs))
        return [text.upper() for text in inputs]

    _, outcomes = run(BatchCallableModel(batch(fn, size=3)), jobs(7))
    assert sorted(sizes) == [1, 3, 3]
    assert len(outcomes) == 7
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    assert [outcomes[i].output for i in range(7)] == [f"QUESTION {i}" for i in range(7)]
    assert all(o.attempts == 1 and o.usage_estimated for o in outcomes.values())


def test_a_batch_returning_the_wrong_number_of_outputs_fails_that_batch():
    def fn(inputs: list[str]) -> list[str]:
        if "question 3" in inputs:
            return ["only one"]
        return list(inputs)

    _, outcomes = run(BatchCallableModel(batch(fn, size=3)), jobs(7))
    assert len(outcomes) == 7
    for i in (3, 4, 5):
        assert outcomes[i].status is RowStatus.FAILED
        assert outcomes[i].error_type == "exception"
        assert "returned 1 outputs for a batch of 3 inputs" in outcomes[i].error
    assert all(outcomes[i].status is RowStatus.OK for i in (0, 1, 2, 6))


# ---- rate limits -------------------------------------------------------------------------------


def test_pacing_limiter_spaces_requests_evenly():
    async def go() -> float:
        limiter = PacingLimiter(600)
        start = time.monotonic()
        for _ in range(21):
            await limiter.acquire()
        return time.monotonic() - start

    # 600/min is one every 0.1 s: the 21st waits 20 intervals.
    assert 1.9 <= asyncio.run(go()) <= 2.3


def test_pacing_limiter_refuses_a_non_positive_rate():
    with pytest.raises(ValueError, match="rate must be positive"):
        PacingLimiter(0)


def test_rate_limits_pause_delays_the_next_acquire():
    async def go() -> tuple[float, float]:
        limits = RateLimits()
        start = time.monotonic()
        await limits.acquire(0)
        unpaused = time.monotonic() - start
        limits.pause(0.1)
        start = time.monotonic()
        await limits.acquire(0)
        return unpaused, time.monotonic() - start

    unpaused, paused = asyncio.run(go())
    assert unpaused < 0.05
    assert paused >= 0.1


def test_runner_rpm_paces_the_requests():
    model = FakeModel()
    started = time.monotonic()
    _, outcomes = run(model, jobs(11), fast(rpm=1200, concurrency=11))
    elapsed = time.monotonic() - started
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    # 1200/min is one every 0.05 s: the 11th request goes out ~0.5 s after the first.
    assert elapsed >= 0.45
    times = [t for t, _ in model.calls]
    assert times[-1] - times[0] >= 0.45


# ---- against the fake OpenAI server ------------------------------------------------------------


def test_rows_are_answered_after_429s_from_the_fake_server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("EVALKIT_HTTP_TRANSPORT", raising=False)
    rows = jobs(5)
    with FakeOpenAIServer(FakeConfig(fail_first=2)) as server:
        model = build_model(parse_model_uri(f"openai:/gpt-4o?base_url={server.base_url}"))
        runner = Runner(model, {"temperature": 0}, fast(concurrency=4, max_attempts=4), PriceTable.load())

        async def go() -> dict[int, RowOutcome]:
            try:
                return await runner.run(rows)
            finally:
                await model.aclose()

        outcomes = asyncio.run(go())
        counts = server.stats.messages_counts()

    assert len(outcomes) == 5
    for job in rows:
        outcome = outcomes[job.index]
        assert outcome.status is RowStatus.OK, outcome.error
        assert outcome.attempts == 3
        assert outcome.output == f"Echo: question {job.index}"
        assert outcome.model_snapshot == "gpt-4o-2024-08-06"
        assert outcome.cost_usd is not None and outcome.cost_usd > 0
        assert counts[messages_hash(job.messages)] == 3
    assert sum(counts.values()) == 15
    assert runner.snapshot == "gpt-4o-2024-08-06"
    assert runner.requests_sent == 15
