"""ek.openai.autolog() with the official openai client against evalkit's fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import openai
import pandas as pd
import pydantic
import pytest

import evalkit as ek
from evalkit.autolog.calls import load_calls
from evalkit.inference.pricing import PriceTable
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_answer

SECRET = "sk-autolog-secret-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Context: Paris is the capital of France. Question: capital?"}]
AGGREGATES = {
    "openai/calls", "openai/errors", "openai/prompt_tokens", "openai/completion_tokens", "openai/cached_tokens",
    "openai/cost_usd", "openai/unpriced_calls", "openai/latency_p50_s", "openai/latency_p95_s",
}


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(require_api_key=SECRET) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(server):
    server.config = FakeConfig()
    server.responder = default_answer
    yield
    ek.openai.autolog(disable=True)


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0) as c:
        yield c


def aclient(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0)


def calls_of(run_id: str) -> pd.DataFrame:
    return load_calls(run_id)


def test_sync_calls_of_every_endpoint_are_rows_with_tokens_model_and_cost(client, server):
    server.config.cached_tokens = 4
    ek.openai.autolog()
    with ek.start_run() as run:
        chat = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        completion = client.completions.create(model="gpt-4o-mini", prompt="Say something short")
        embedding = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
        response = client.responses.create(model="gpt-4o", input="Hello there, tell me a long story please")
    assert chat.choices[0].message.content and completion.choices[0].text and response.output_text
    assert len(embedding.data) == 2

    rows = calls_of(run.info.run_id)
    assert list(rows.endpoint) == ["chat.completions", "completions", "embeddings", "responses"]
    assert list(rows.model) == ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "text-embedding-3-small",
                                "gpt-4o-2024-08-06"]
    assert list(rows.requested_model) == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "gpt-4o"]
    assert (rows.status == "ok").all() and rows.error.isna().all() and (rows.latency_s > 0).all()
    assert rows.prompt_tokens[0] == chat.usage.prompt_tokens and rows.completion_tokens[0] == chat.usage.completion_tokens
    assert rows.prompt_tokens[3] == response.usage.input_tokens and rows.cached_tokens[3] == 4
    # cached tokens at the cached price, priced on the model the response named
    prices = PriceTable.load().lookup("gpt-4o")
    expected = ((chat.usage.prompt_tokens - 4) * prices.input + 4 * prices.cached_input
                + chat.usage.completion_tokens * prices.output) / 1e6
    assert rows.cost_usd[0] == pytest.approx(expected)
    assert rows.input.isna().all() and rows.output.isna().all()  # texts only when asked

    metrics = ek.get_run(run.info.run_id).data.metrics
    assert AGGREGATES <= set(metrics) and not [k for k in metrics if k not in AGGREGATES]
    assert metrics["openai/calls"] == 4 and metrics["openai/errors"] == 0
    assert metrics["openai/cost_usd"] == pytest.approx(rows.cost_usd.sum())
    assert metrics["openai/prompt_tokens"] == rows.prompt_tokens.sum()


def test_streams_report_usage_from_the_last_chunk_and_the_caller_sees_the_same_chunks(client, server):
    ek.openai.autolog(log_texts=True)
    with ek.start_run() as run:
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        asked = list(client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
        legacy = list(client.completions.create(model="gpt-4o", prompt="one two three", stream=True))
        with client.responses.create(model="gpt-4o", input="Hello there", stream=True) as events:
            kinds = [event.type for event in events]
    # the usage chunk evalkit asked for is hidden; the one the caller asked for is not
    assert all(chunk.choices for chunk in chunks) and all(chunk.usage is None for chunk in chunks)
    assert asked[-1].usage is not None and not asked[-1].choices and len(asked) == len(chunks) + 1
    assert all(chunk.choices for chunk in legacy)
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"

    rows = calls_of(run.info.run_id)
    assert list(rows.stream) == [True] * 4 and (rows.status == "ok").all()
    assert rows.prompt_tokens.notna().all() and rows.completion_tokens.notna().all() and rows.cost_usd.notna().all()
    assert rows.prompt_tokens[0] == asked[-1].usage.prompt_tokens
    answer = "".join(chunk.choices[0].delta.content for chunk in chunks)
    assert rows.output[0] == answer and "Paris" in rows.input[0]


class City(pydantic.BaseModel):
    city: str


def city_json(body: dict) -> str:
    return '{"city": "Paris"}'


def test_structured_outputs_and_the_stream_helpers_are_recorded_once_each(client, server):
    # parse() posts without create(); the .stream() helpers go through create(stream=True).
    server.responder = city_json
    server.reset_stats()
    ek.openai.autolog(log_texts=True)
    with ek.start_run() as run:
        parsed = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=City)
        answer = client.responses.parse(model="gpt-4o", input="Capital of France?", text_format=City)
        with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, response_format=City) as stream:
            streamed = stream.get_final_completion()
        with client.responses.stream(model="gpt-4o", input="Capital of France?") as events:
            final = events.get_final_response()
    assert parsed.choices[0].message.parsed == City(city="Paris") and answer.output_parsed == City(city="Paris")
    assert streamed.choices[0].message.parsed == City(city="Paris")
    rows = calls_of(run.info.run_id)
    assert list(rows.endpoint) == ["chat.completions", "responses", "chat.completions", "responses"]
    assert list(rows.stream) == [False, False, True, True] and (rows.status == "ok").all()
    assert list(rows.model) == ["gpt-4o-2024-08-06"] * 4 and rows.cost_usd.notna().all()
    assert rows.prompt_tokens[0] == parsed.usage.prompt_tokens and rows.prompt_tokens[1] == answer.usage.input_tokens
    assert rows.prompt_tokens[3] == final.usage.input_tokens
    assert list(rows.output) == ['{"city": "Paris"}'] * 4
    assert server.stats.requests == 4


def test_async_structured_outputs_and_stream_helpers_are_recorded(server):
    server.responder = city_json
    server.reset_stats()
    ek.openai.autolog()

    async def main() -> list:
        async with aclient(server) as client:
            parsed = await client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=City)
            answer = await client.responses.parse(model="gpt-4o", input="Capital?", text_format=City)
            async with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
                streamed = await stream.get_final_completion()
            return [parsed.choices[0].message.parsed, answer.output_parsed, streamed.choices[0].message.content]

    with ek.start_run() as run:
        got = asyncio.run(main())
    assert got == [City(city="Paris"), City(city="Paris"), '{"city": "Paris"}']
    rows = calls_of(run.info.run_id)
    assert list(rows.endpoint) == ["chat.completions", "responses", "chat.completions"]
    assert list(rows.stream) == [False, False, True] and rows.prompt_tokens.notna().all()
    assert rows.cost_usd.notna().all() and server.stats.requests == 3


def test_a_stream_without_usage_records_no_tokens_and_no_cost_rather_than_a_guess(client, server):
    server.config.rate_missing_usage = 1.0  # Azure-like: no usage chunk
    ek.openai.autolog()
    with ek.start_run() as run:
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    rows = calls_of(run.info.run_id)
    assert rows.prompt_tokens.isna().all() and rows.cost_usd.isna().all() and rows.model[0] == "gpt-4o-2024-08-06"
    assert ek.get_run(run.info.run_id).data.metrics["openai/unpriced_calls"] == 1


def test_async_calls_and_streams_from_many_tasks_land_in_the_callers_run(server):
    ek.openai.autolog(batch_size=7)

    async def main() -> None:
        async with aclient(server) as client:
            async def one(i: int) -> None:
                if i % 5 == 0:
                    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
                    async for _ in stream:
                        pass
                else:
                    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

            await asyncio.gather(*(one(i) for i in range(30)))
            await client.embeddings.create(model="text-embedding-3-small", input="x")
            await client.responses.create(model="gpt-4o", input="hi")

    with ek.start_run() as run:
        asyncio.run(main())
    rows = calls_of(run.info.run_id)
    assert len(rows) == 32 and rows.stream.sum() == 6 and rows.prompt_tokens.notna().all()
    metrics = ek.get_run(run.info.run_id).data.metrics
    assert metrics["openai/calls"] == 32 and len([k for k in metrics if k.startswith("openai/")]) == len(AGGREGATES)
    history = ek.get_metric_history(run.info.run_id, "openai/calls")
    assert [m.step for m in history] == [7, 14, 21, 28, 32]  # one write per batch, not per call


def test_errors_are_rows_and_the_callers_exception_is_unchanged(client, server):
    server.config.rate_500 = 1.0
    ek.openai.autolog()
    with ek.start_run() as run:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        server.config.rate_500 = 0.0
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="does-not-exist", messages=MESSAGES)
    rows = calls_of(run.info.run_id)
    assert list(rows.status) == ["error", "error"]
    assert rows.error[0].startswith("InternalServerError") and "does not exist" in rows.error[1]
    assert ek.get_run(run.info.run_id).data.metrics["openai/errors"] == 2


def test_a_failure_inside_the_autolog_never_breaks_the_call(client, monkeypatch, caplog):
    ek.openai.autolog()

    def broken(*args, **kwargs):
        raise RuntimeError("autolog bug")

    monkeypatch.setattr("evalkit.autolog.openai._Call.finished", broken)
    monkeypatch.setattr("evalkit.autolog.openai._Call.chunk", broken)
    monkeypatch.setattr("evalkit.autolog.calls.CallLog._write", broken)
    with ek.start_run(), caplog.at_level(logging.WARNING, logger="evalkit.autolog.openai"):
        answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert answer.choices[0].message.content and chunks
    assert "the call itself is unaffected" in caplog.text


def test_the_api_key_never_lands_in_the_run(client, server):
    ek.openai.autolog(log_texts=True)
    with ek.start_run() as run:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"key is {SECRET}"}])
        bad = openai.OpenAI(base_url=server.base_url, api_key=SECRET + "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    rows = calls_of(run.info.run_id)
    assert SECRET not in rows.to_json() and list(rows.status) == ["ok", "error"]
    run_data = ek.get_run(run.info.run_id).data
    assert SECRET not in str(run_data.params) + str(run_data.tags)


def test_with_no_active_run_calls_go_to_a_run_the_autolog_starts_or_are_skipped(client):
    ek.openai.autolog()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert ek.active_run() is None  # the user's context is untouched
    ek.openai.autolog(disable=True)  # ends the autolog's own run, rows written
    runs = ek.search_runs(filter_string="tags.`evalkit.source` = 'autolog.openai'", output_format="list")
    assert len(runs) == 1 and runs[0].info.status.value == "FINISHED"
    assert len(calls_of(runs[0].info.run_id)) == 2

    ek.openai.autolog(no_active_run="skip")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    ek.openai.autolog(disable=True)
    assert len(ek.search_runs(filter_string="tags.`evalkit.source` = 'autolog.openai'", output_format="list")) == 1


def test_disable_restores_the_clients_methods(client):
    original = openai.resources.chat.completions.Completions.create
    ek.openai.autolog()
    assert openai.resources.chat.completions.Completions.create is not original
    ek.openai.autolog(disable=True)
    assert openai.resources.chat.completions.Completions.create is original
    assert openai.resources.responses.AsyncResponses.parse.__name__ == "parse"
    assert not hasattr(openai.resources.responses.AsyncResponses.parse, "__wrapped__")
    with ek.start_run() as run:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert calls_of(run.info.run_id).empty


def test_evaluate_calls_are_not_counted_twice_but_the_users_own_calls_are(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    ek.openai.autolog()
    data = pd.DataFrame({"inputs": ["What is 2+2?", "Capital of France?"], "ground_truth": ["4", "Paris"]})
    user = openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0)

    def my_model(question: str) -> str:
        return user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}]
                                            ).choices[0].message.content

    with ek.start_run() as run:
        ek.evaluate(model=f"openai:/gpt-4o?base_url={server.base_url}", data=data, targets="ground_truth",
                    evaluators=["exact_match"], progress=False, cache="off")
    assert server.stats.by_status[200] >= 2 and calls_of(run.info.run_id).empty
    with ek.start_run() as run:
        ek.evaluate(model=my_model, data=data, targets="ground_truth", evaluators=["exact_match"],
                    progress=False, cache="off")
    rows = calls_of(run.info.run_id)
    assert len(rows) == 2 and (rows.requested_model == "gpt-4o").all()  # my_model's calls are mine
