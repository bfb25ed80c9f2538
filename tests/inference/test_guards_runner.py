"""Guards for the runner with more than one request in flight, measured on the fake OpenAI
server: a 429's Retry-After holds the other rows too, and in-flight requests hold their share of
max_cost_usd. Also what a resumed run must match, and which rows ``latency_total/*`` counts.
Each test fails on a small bug planted in the source (see bench/mutation-survivors.md)."""

from __future__ import annotations

import asyncio
import random

import pandas as pd
import pytest

import evalkit as ek
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.resolve import build_model, parse_model_uri
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.inference.runner.runner import Runner, RunnerConfig
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

CONCURRENCY = 4


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("EVALKIT_HTTP_TRANSPORT", raising=False)


def jobs(n: int) -> list[RowJob]:
    # Same token count on every row, so every row's cost estimate is the same.
    return [RowJob(i, messages=[{"role": "user", "content": f"question {i % 10}{i // 10}"}], input=f"q{i}")
            for i in range(n)]


def run_against(server: FakeOpenAIServer, rows: list[RowJob], config: RunnerConfig,
                params: dict | None = None) -> tuple[Runner, dict[int, RowOutcome]]:
    model = build_model(parse_model_uri(f"openai:/gpt-4o?base_url={server.base_url}"))
    runner = Runner(model, params or {}, config, PriceTable.load())

    async def go() -> dict[int, RowOutcome]:
        try:
            return await runner.run(rows)
        finally:
            await model.aclose()

    return runner, asyncio.run(go())


def only_first_request_refused(requests: int) -> tuple[int, float]:
    """A (seed, rate_429) for which the server's fault draws refuse the first request it gets
    and none of the next ``requests``: the draws are one ``random.Random(seed)`` per request."""
    for seed in range(10_000):
        rng = random.Random(seed)
        draws = [rng.random() for _ in range(requests + 1)]
        if draws[0] < min(draws[1:]):
            return seed, (draws[0] + min(draws[1:])) / 2
    raise AssertionError("no seed found")


def test_a_429_with_retry_after_holds_the_other_rows_in_flight_too():
    rows = jobs(16)
    seed, rate = only_first_request_refused(len(rows) + 4)
    config = FakeConfig(latency=0.05, seed=seed, rate_429=rate, retry_after=1.0)
    with FakeOpenAIServer(config) as server:
        _, outcomes = run_against(server, rows, RunnerConfig(concurrency=CONCURRENCY, max_attempts=3,
                                                             backoff_base=0.001, backoff_max=0.01))
        times = sorted(server.stats.as_dict()["chat_request_times"])
        assert server.stats.faults["429"] == 1
    assert all(o.status is RowStatus.OK for o in outcomes.values())
    assert len(times) == len(rows) + 1  # one retry
    refused_at = times[0]
    # Only the requests already on their way when the 429 came back went out within the pause;
    # every later one, from every row, waited for the server's Retry-After.
    during_pause = [t for t in times if t - refused_at < 0.95]
    assert len(during_pause) <= CONCURRENCY, [round(t - refused_at, 3) for t in times]
    assert len(times) - len(during_pause) >= len(rows) - CONCURRENCY + 1


def test_in_flight_requests_reserve_their_cost_against_max_cost_usd():
    rows = jobs(12)
    with FakeOpenAIServer(FakeConfig(latency=0.3)) as server:
        model = build_model(parse_model_uri(f"openai:/gpt-4o?base_url={server.base_url}"))
        probe = Runner(model, {"max_tokens": 50}, RunnerConfig(), PriceTable.load())
        estimates = {probe.caller.estimate_cost(job.messages) for job in rows}
        asyncio.run(model.aclose())
        assert len(estimates) == 1 and next(iter(estimates)) > 0
        budget = 3.5 * estimates.pop()  # three rows fit the budget, a fourth would not
        runner, outcomes = run_against(server, rows, RunnerConfig(concurrency=16, max_cost_usd=budget),
                                       params={"max_tokens": 50})
        sent = server.stats.requests
    # All twelve could start at once (concurrency 16) before any answer was priced: only the three
    # whose estimates fit went out.
    assert sent == 3, f"{sent} requests sent for a budget of three"
    assert sum(o.status is RowStatus.OK for o in outcomes.values()) == 3
    assert sum(o.status is RowStatus.SKIPPED for o in outcomes.values()) == 9
    assert runner.stopped_reason == "max_cost_usd"
    assert runner.spent <= budget


def test_evaluate_max_cost_usd_holds_at_concurrency_above_one(tmp_path):
    data = pd.DataFrame({"inputs": [f"question {i % 10}{i // 10}" for i in range(12)]})
    with FakeOpenAIServer(FakeConfig(latency=0.3)) as server:
        uri = f"openai:/gpt-4o?base_url={server.base_url}"
        model = build_model(parse_model_uri(uri))
        probe = Runner(model, {"max_tokens": 50}, RunnerConfig(), PriceTable.load())
        estimate = probe.caller.estimate_cost([{"role": "user", "content": "question 00"}])
        asyncio.run(model.aclose())
        result = ek.evaluate(model=uri, data=data, inference_params={"max_tokens": 50}, prompt="{inputs}",
                             evaluators=[], concurrency=16, max_cost_usd=3.5 * estimate, cache="off",
                             progress=False, report=False)
        sent = server.stats.requests
    assert sent == 3
    assert result.metrics["rows/answered"] == 3 and result.metrics["rows/skipped"] == 9


# ---- resume and cached rows --------------------------------------------------------------------


def test_resume_is_refused_when_the_inference_params_differ(tmp_path):
    data = pd.DataFrame({"inputs": [f"question {i}" for i in range(4)]})
    with FakeOpenAIServer() as server:
        uri = f"openai:/gpt-4o?base_url={server.base_url}"
        first = ek.evaluate(model=uri, data=data, inference_params={"temperature": 0.0}, evaluators=[],
                            cache="off", progress=False, report=False)
        before = server.stats.requests
        with pytest.raises(ek.InvalidArgument, match="inference_params"):
            ek.evaluate(model=uri, data=data, inference_params={"temperature": 0.7}, evaluators=[], cache="off",
                        progress=False, report=False, resume=first.run_id)
        assert server.stats.requests == before  # refused before any call
        again = ek.evaluate(model=uri, data=data, inference_params={"temperature": 0.0}, evaluators=[],
                            cache="off", progress=False, report=False, resume=first.run_id)
    assert again.run_id == first.run_id


def test_latency_total_leaves_cached_rows_out(tmp_path):
    first_rows = pd.DataFrame({"inputs": [f"question {i}" for i in range(6)]})
    more_rows = pd.DataFrame({"inputs": [f"question {i}" for i in range(8)]})
    cache_path = tmp_path / "cache.db"
    with FakeOpenAIServer(FakeConfig(latency=0.0)) as server:
        uri = f"openai:/gpt-4o?base_url={server.base_url}"
        ek.evaluate(model=uri, data=first_rows, evaluators=[], cache="on", cache_path=cache_path,
                    progress=False, report=False)
        server.config.latency = 0.25  # only the two new rows are sent, and each takes 250 ms
        result = ek.evaluate(model=uri, data=more_rows, evaluators=[], cache="on", cache_path=cache_path,
                             progress=False, report=False)
    metrics = result.metrics
    assert metrics["cache/hits"] == 6 and metrics["cache/misses"] == 2
    # Six cached rows answered in a few ms when first asked; counted, they would pull p50 down.
    for name in ("latency_total/p50_ms", "latency_total/mean_ms", "latency_total/max_ms"):
        assert metrics[name] >= 250, (name, metrics[name])


# ---- batch callables: failures and latency ----------------------------------------------------


def test_a_batch_that_times_out_or_raises_fails_its_rows_with_the_reason():
    from evalkit.inference.providers.callables import BatchCallableModel, batch

    async def slow_or_broken(inputs: list[str]) -> list[str]:
        if "q3" in inputs:
            await asyncio.sleep(5)
        if "q0" in inputs:
            raise ValueError("bad batch")
        await asyncio.sleep(0.05)
        return [text.upper() for text in inputs]

    rows = [RowJob(i, messages=[{"role": "user", "content": f"q{i}"}], input=f"q{i}") for i in range(6)]
    model = BatchCallableModel(batch(slow_or_broken, size=3))
    outcomes = asyncio.run(Runner(model, {}, RunnerConfig(timeout=0.5), PriceTable.load()).run(rows))
    for i in (0, 1, 2):
        assert outcomes[i].status is RowStatus.FAILED and outcomes[i].error == "ValueError: bad batch"
        assert (outcomes[i].error_type, outcomes[i].attempts) == ("exception", 1)
    for i in (3, 4, 5):
        assert outcomes[i].error == "no answer within the 0.5 s timeout"
        assert (outcomes[i].error_type, outcomes[i].attempts) == ("exception", 1)

    def fine(inputs: list[str]) -> list[str]:
        import time

        time.sleep(0.05)
        return list(inputs)

    outcomes = asyncio.run(Runner(BatchCallableModel(batch(fine, size=3)), {}, RunnerConfig(),
                                  PriceTable.load()).run(rows))
    # Every row of a batch waited for the whole batch.
    for outcome in outcomes.values():
        assert outcome.status is RowStatus.OK
        assert 0.05 <= outcome.latency_s < 60 and outcome.total_latency_s == outcome.latency_s


# ---- the cache key and failed rows ------------------------------------------------------------


def test_the_cache_key_is_stable_across_versions():
    """A changed key silently empties every user's cache: these values are pinned on purpose."""
    from evalkit.inference.cache import cache_key

    messages = [{"role": "user", "content": "Grüße, 東京"}]
    key = cache_key("openai:/gpt-4o", "http://h/v1", {"temperature": 0, "seed": None}, messages)
    assert key == "ec6b6f19036c1cd210f84c6693d088771f71aa0b42dd9edcee95500a438b09a9"
    assert key == cache_key("openai:/gpt-4o", "http://h/v1", {"temperature": 0}, messages)
    # A lone surrogate in decoded user text still hashes.
    lone = cache_key("openai:/gpt-4o", None, {}, [{"role": "user", "content": "a\ud800b"}])
    assert lone == "1bd350a2dcfdf500919a41610f98b204a668f13d1ac9e83b7ef4cadf556392d0"
    with pytest.raises(ek.InvalidArgument, match="JSON-serializable"):
        cache_key("openai:/gpt-4o", None, {"temperature": object()}, messages)


def test_a_row_that_runs_out_of_retries_records_its_attempts_and_time():
    rows = jobs(2)
    with FakeOpenAIServer(FakeConfig(rate_500=1.0)) as server:
        _, outcomes = run_against(server, rows, RunnerConfig(concurrency=2, max_attempts=3, backoff_base=0.01,
                                                             backoff_max=0.02))
    for outcome in outcomes.values():
        assert (outcome.status, outcome.error_type, outcome.attempts) == (RowStatus.FAILED, "transient", 3)
        assert "HTTP 500" in outcome.error or "500" in outcome.error
        assert 0 < outcome.total_latency_s < 30


def test_a_failed_cache_write_is_logged_and_raised_by_the_next_flush_once(tmp_path, caplog):
    import logging
    import sqlite3

    from evalkit.inference.cache import CachedResponse, ResponseCache
    from evalkit.inference.providers.base import Usage

    answer = CachedResponse("text", Usage(3, 4), "snap", 0.5, 0.001, 1.0)
    path = tmp_path / "deep" / "er" / "cache.db"  # missing folders are created
    cache = ResponseCache(path)
    cache.put("k1", answer)
    cache.flush()
    assert cache.get("k1") == answer
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE responses")
    caplog.set_level(logging.WARNING, logger="evalkit.inference.cache")
    cache.put("k2", answer)
    cache.put("k3", answer)
    with pytest.raises(ek.StoreUnavailable, match=f"could not write to response cache {path}: no such table"):
        cache.flush()
    assert f"response cache {path}: could not write 2 answers: no such table: responses" in caplog.text
    cache.flush()  # reported once; the writer thread lives on
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE responses (key TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL, input_tokens "
                      "INTEGER, output_tokens INTEGER, cached_input_tokens INTEGER, usage_estimated INTEGER, "
                      "model_snapshot TEXT, latency_s REAL NOT NULL, cost_usd REAL, created_at REAL NOT NULL)")
    cache.put("k4", answer)
    cache.flush()
    assert cache.get("k4") == answer
    cache.close()
    with pytest.raises(ek.InvalidState, match=f"response cache {path} is closed"):
        cache.get("k4")
    with pytest.raises(ek.InvalidArgument, match="put expects a CachedResponse, got str"):
        cache.put("k5", "text")
    read_only = ResponseCache(path, mode="read-only")
    assert read_only.get("k4") == answer
    read_only.put("k6", answer)  # a no-op
    assert read_only.get("k6") is None
    read_only.close()


def test_a_tokens_per_minute_budget_paces_requests_by_their_tokens():
    import time

    from evalkit.inference.runner.ratelimit import RateLimits

    limits = RateLimits(tpm=6000)  # 100 tokens a second

    async def three_requests() -> float:
        start = time.monotonic()
        for tokens in (100, 100, 50):
            await limits.acquire(tokens)
        return time.monotonic() - start

    # The first request goes at once; each next one waits for the previous one's tokens (1 s each).
    elapsed = asyncio.run(three_requests())
    assert 1.9 <= elapsed < 4.0, elapsed
    assert RateLimits().tokens is None and RateLimits().requests is None
