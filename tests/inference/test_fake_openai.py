"""The fake OpenAI server answers like the real API, injects the faults it is told to, and counts."""

from __future__ import annotations

import asyncio
import json
import math
import re
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest

from evalkit.testing.fake_openai import (
    FakeConfig,
    FakeOpenAIServer,
    embed_text,
    messages_hash,
)

T = TypeVar("T")
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as started:
        yield started


def with_client(
    server: FakeOpenAIServer, use: Callable[[openai.AsyncOpenAI], Awaitable[T]], **options: Any
) -> T:
    """Run ``use(client)`` with a fresh openai client that does not retry unless told to."""

    async def run() -> T:
        options.setdefault("max_retries", 0)
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", **options) as client:
            return await use(client)

    return asyncio.run(run())


def chat(server: FakeOpenAIServer, **options: Any) -> Any:
    """One chat completion through the openai client; ``options`` override model and messages."""
    params: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES}
    client_options = {k: options.pop(k) for k in ("max_retries", "timeout") if k in options}
    params.update(options)
    return with_client(server, lambda client: client.chat.completions.create(**params), **client_options)


def post(server: FakeOpenAIServer, path: str = "/chat/completions", **body: Any) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": MESSAGES} | body
    return httpx.post(server.base_url + path, json=body)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_chat_completion_echoes_the_question_with_usage_and_snapshot(server: FakeOpenAIServer) -> None:
    completion = chat(server)

    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].message.content == "Echo: What is the capital of France?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 8  # 6 words * 4/3
    assert completion.usage.completion_tokens == 9
    assert completion.usage.total_tokens == 17
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert chat(server, model="my-local-model").model == "my-local-model"


def test_chat_answers_with_the_first_sentence_of_the_context(server: FakeOpenAIServer) -> None:
    prompt = "Answer from the context.\nContext:\nParis is the capital of France. It is large.\nQuestion: capital?"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    completion = chat(server, messages=messages)

    assert completion.choices[0].message.content == "Paris is the capital of France."


def test_responder_decides_the_answer() -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return json.dumps({"score": 4})

    with FakeOpenAIServer(responder=responder) as server:
        completion = chat(server, response_format={"type": "json_object"}, temperature=0)

    assert json.loads(completion.choices[0].message.content) == {"score": 4}
    assert seen[0]["response_format"] == {"type": "json_object"}


def test_embeddings_are_deterministic_unit_vectors_that_reflect_shared_words(server: FakeOpenAIServer) -> None:
    texts = ["The cat sat on the mat", "the cat sat on the MAT", "A cat sat on a rug", "Quarterly revenue grew fast"]
    response = with_client(server, lambda c: c.embeddings.create(model="text-embedding-3-small", input=texts))
    vectors = [item.embedding for item in response.data]

    assert [item.index for item in response.data] == [0, 1, 2, 3]
    assert all(len(v) == 64 and math.isclose(cosine(v, v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[1])
    assert cosine(vectors[0], vectors[2]) > cosine(vectors[0], vectors[3])
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    # The openai client asked for base64; a plain JSON request gets the same vector as floats.
    floats = post(server, "/embeddings", model="text-embedding-3-small", input="The cat sat on the mat").json()
    assert floats["data"][0]["embedding"] == embed_text("The cat sat on the mat")
    assert vectors[0] == pytest.approx(embed_text("The cat sat on the mat"), abs=1e-6)


def test_moderation_flags_insults(server: FakeOpenAIServer) -> None:
    response = with_client(server, lambda c: c.moderations.create(input=["You idiot.", "Have a nice day."]))

    rude, polite = response.results
    assert response.model == "omni-moderation-latest"
    assert rude.flagged and rude.categories.harassment and not rude.categories.violence
    assert rude.category_scores.harassment > 0.5
    assert not polite.flagged and not any(polite.categories.model_dump().values())


def test_models_lists_aliases_and_snapshots(server: FakeOpenAIServer) -> None:
    names = {model.id for model in with_client(server, lambda c: c.models.list()).data}

    assert {"gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "text-embedding-3-small"} <= names


def test_unknown_model_is_not_found(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        chat(server, model="does-not-exist")

    assert caught.value.code == "model_not_found"
    assert "`does-not-exist` does not exist" in caught.value.message


def test_bad_temperature_is_a_bad_request_naming_the_parameter(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(server, temperature=2.5)

    assert caught.value.param == "temperature"
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 1.5}, "max_tokens"), ({"messages": []}, "messages")],
)
def test_invalid_parameters_are_rejected(server: FakeOpenAIServer, body: dict[str, Any], param: str) -> None:
    response = post(server, **body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_missing_messages_is_rejected(server: FakeOpenAIServer) -> None:
    response = httpx.post(server.base_url + "/chat/completions", json={"model": "gpt-4o"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_required_api_key() -> None:
    with FakeOpenAIServer(require_api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError) as caught:
            chat(server)
        assert caught.value.code == "invalid_api_key"
        answered = httpx.post(
            server.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES},
            headers={"Authorization": "Bearer sk-right"},
        )
        assert answered.status_code == 200


def test_rate_429_carries_retry_after() -> None:
    with FakeOpenAIServer(FakeConfig(rate_429=1.0, retry_after=7)) as server:
        with pytest.raises(openai.RateLimitError) as caught:
            chat(server)

    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response.headers["x-ratelimit-reset-requests"] == "7s"
    assert caught.value.code == "rate_limit_exceeded"


def test_fail_first_rejects_each_prompt_n_times_then_answers() -> None:
    other = [{"role": "user", "content": "Something else"}]
    with FakeOpenAIServer(FakeConfig(fail_first=2)) as server:
        statuses = [post(server).status_code for _ in range(3)]
        first_other = post(server, messages=other)
        counts = server.stats.messages_counts()

    assert statuses == [429, 429, 200]
    assert first_other.status_code == 429 and first_other.headers["Retry-After"] == "0"
    assert counts == {messages_hash(MESSAGES): 3, messages_hash(other): 1}


def test_fail_first_is_overcome_by_the_openai_clients_retries() -> None:
    with FakeOpenAIServer(FakeConfig(fail_first=1)) as server:
        completion = chat(server, max_retries=1)
        assert server.stats.by_status == {429: 1, 200: 1}

    assert completion.choices[0].message.content.startswith("Echo: ")


def test_missing_usage() -> None:
    with FakeOpenAIServer(FakeConfig(rate_missing_usage=1.0)) as server:
        assert chat(server).usage is None


def test_malformed_body_makes_the_client_fail() -> None:
    with FakeOpenAIServer(FakeConfig(rate_malformed=1.0)) as server:
        # The openai client lets the bare JSONDecodeError (a ValueError) through.
        with pytest.raises((openai.APIError, ValueError)):
            chat(server)
        assert server.stats.by_status == {200: 1}


def test_hang_is_cut_by_the_client_timeout() -> None:
    with FakeOpenAIServer(FakeConfig(rate_hang=1.0)) as server:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            chat(server, timeout=0.3)
        assert time.monotonic() - started < 2
        assert server.stats.faults == {"hang": 1} and not server.stats.by_status


def test_short_hang_answers_late() -> None:
    with FakeOpenAIServer(FakeConfig(rate_hang=1.0, hang_seconds=0.2)) as server:
        started = time.monotonic()
        assert post(server).status_code == 200
        assert time.monotonic() - started >= 0.2


def test_drop_is_a_connection_error() -> None:
    with FakeOpenAIServer(FakeConfig(rate_drop=1.0)) as server:
        with pytest.raises(openai.APIConnectionError):
            chat(server)
        assert server.stats.requests == 1 and not server.stats.by_status


def test_latency_delays_answers() -> None:
    with FakeOpenAIServer(FakeConfig(latency=0.2)) as server:
        started = time.monotonic()
        post(server)
        assert time.monotonic() - started >= 0.2


def test_rpm_limit_rejects_over_the_window_with_retry_after() -> None:
    with FakeOpenAIServer(FakeConfig(rpm_limit=3)) as server:
        responses = [post(server) for _ in range(5)]
        stats = server.stats

    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert 59 <= int(responses[3].headers["Retry-After"]) <= 60
    assert stats.rate_limited == 2


def test_random_faults_repeat_with_the_same_seed_and_follow_config_changes() -> None:
    http = httpx.Client()

    def statuses(server: FakeOpenAIServer) -> list[int]:
        body = {"model": "gpt-4o", "messages": MESSAGES}
        return [http.post(server.base_url + "/chat/completions", json=body).status_code for _ in range(20)]

    config = FakeConfig(seed=7, rate_500=0.5)
    with http, FakeOpenAIServer(config) as first, FakeOpenAIServer(FakeConfig(seed=7, rate_500=0.5)) as second:
        sequence = statuses(first)
        assert statuses(second) == sequence
        assert {200, 500} == set(sequence)
        first.reset_stats()
        assert statuses(first) == sequence
        first.config.rate_500 = 0.0
        assert set(statuses(first)) == {200}


def test_stats_count_requests_and_reset(server: FakeOpenAIServer) -> None:
    before = time.monotonic()
    post(server)
    post(server)
    post(server, model="does-not-exist")
    post(server, "/embeddings", model="text-embedding-3-small", input="x")

    stats = server.stats
    assert stats.requests == 4
    assert stats.by_status == {200: 3, 404: 1}
    assert [(entry.path, entry.model, entry.messages_hash) for entry in stats.request_log] == [
        ("/v1/chat/completions", "gpt-4o", messages_hash(MESSAGES)),
        ("/v1/chat/completions", "gpt-4o", messages_hash(MESSAGES)),
        ("/v1/chat/completions", "does-not-exist", messages_hash(MESSAGES)),
    ]
    assert before <= stats.request_log[0].time <= time.monotonic()
    assert stats.messages_counts() == {messages_hash(MESSAGES): 3}

    server.reset_stats()
    assert server.stats.requests == 0 and not server.stats.request_log and not server.stats.messages_counts()


def test_stats_and_reset_endpoints(server: FakeOpenAIServer) -> None:
    root = server.base_url.removesuffix("/v1")
    post(server)

    stats = httpx.get(root + "/_stats").json()
    assert stats["requests"] == 1
    assert stats["by_status"] == {"200": 1}
    assert stats["messages_counts"] == {messages_hash(MESSAGES): 1}
    assert httpx.post(root + "/_reset").status_code == 204
    assert httpx.get(root + "/_stats").json()["requests"] == 0


def test_messages_hash_ignores_key_order() -> None:
    assert messages_hash([{"role": "user", "content": "hi"}]) == messages_hash([{"content": "hi", "role": "user"}])
    assert re.fullmatch(r"[0-9a-f]{16}", messages_hash(MESSAGES))


def test_command_line_server_starts_and_answers() -> None:
    command = [sys.executable, "-m", "evalkit.testing.fake_openai", "--port", "0", "--latency", "0.01"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready, "the server did not start within 20 s"
            line = process.stdout.readline()
            match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+/v1)\n", line)
            assert match, line
            body = {"model": "gpt-4o-mini", "messages": MESSAGES}
            response = httpx.post(match.group(1) + "/chat/completions", json=body)
            assert response.json()["model"] == "gpt-4o-mini-2024-07-18"
        finally:
            process.terminate()
