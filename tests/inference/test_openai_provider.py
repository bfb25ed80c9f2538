"""The OpenAI-compatible provider over its httpx transport (intercepted by respx), and model URIs."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from types import SimpleNamespace

import httpx
import pytest
import respx

from evalkit.errors import InvalidArgument, PermanentModelError, TransientModelError
from evalkit.inference.providers import resolve
from evalkit.inference.providers.base import ModelResponse, Usage
from evalkit.inference.providers.openai_chat import (
    OPENAI_BASE_URL,
    OpenAIChatModel,
    retry_after_seconds,
)
from evalkit.inference.providers.resolve import build_model, parse_model_uri

BASE = "http://fake.test/v1"
KEY = "sk-test-abcdef123456"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "EVALKIT_HTTP_TRANSPORT", "MY_OTHER_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def make_model(api_key: str = KEY, model: str = "gpt-4o") -> OpenAIChatModel:
    return OpenAIChatModel(f"openai:/{model}?base_url={BASE}", model, BASE, api_key, transport="httpx", timeout=5.0)


def generate(model, messages=MESSAGES, params=None) -> ModelResponse:
    async def go() -> ModelResponse:
        try:
            return await model.generate(messages, params or {})
        finally:
            await model.aclose()

    return asyncio.run(go())


def completion(text="4", model="gpt-4o-2024-08-06", usage=True, finish_reason="stop") -> dict:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": 21,
            "completion_tokens": 3,
            "total_tokens": 24,
            "prompt_tokens_details": {"cached_tokens": 16},
        }
    return body


def error_body(message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


# ---- successful answers ------------------------------------------------------------------------


def test_a_200_answer_is_parsed_and_the_request_carries_model_messages_params_and_key(mock):
    route = mock.post("/chat/completions").respond(200, json=completion(finish_reason="length"))
    response = generate(make_model(), params={"temperature": 0.0, "max_tokens": 5, "seed": 7})

    assert response.text == "4"
    assert response.usage == Usage(input_tokens=21, output_tokens=3, cached_input_tokens=16)
    assert response.usage.estimated is False
    assert response.model_snapshot == "gpt-4o-2024-08-06"
    assert response.extra == {"finish_reason": "length"}

    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    sent = json.loads(request.content)
    assert sent == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 5, "seed": 7}


def test_a_cookie_the_endpoint_sets_is_sent_back_and_answers_without_one_change_nothing(mock):
    # Sticky sessions behind a load balancer: the client reads cookies only from responses
    # that set one (bench_runner's per-request CPU), and must still keep and send them.
    route = mock.post("/chat/completions")
    route.side_effect = [
        httpx.Response(200, json=completion(), headers={"Set-Cookie": "lb=node-7; Path=/"}),
        httpx.Response(200, json=completion()),
        httpx.Response(200, json=completion()),
    ]
    model = make_model()

    async def go() -> None:
        try:
            for _ in range(3):
                await model.generate(MESSAGES, {})
        finally:
            await model.aclose()

    asyncio.run(go())
    cookies = [call.request.headers.get("Cookie") for call in route.calls]
    assert cookies == [None, "lb=node-7", "lb=node-7"]


def test_usage_without_cached_token_details_counts_zero_cached(mock):
    body = completion()
    body["usage"] = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    mock.post("/chat/completions").respond(200, json=body)
    assert generate(make_model()).usage == Usage(5, 2, 0)


def test_missing_usage_gives_none(mock):
    mock.post("/chat/completions").respond(200, json=completion(usage=False))
    response = generate(make_model())
    assert response.usage is None
    assert response.text == "4"


def test_null_content_is_an_empty_answer(mock):
    body = completion()
    body["choices"][0]["message"]["content"] = None
    mock.post("/chat/completions").respond(200, json=body)
    assert generate(make_model()).text == ""


def test_malformed_json_body_is_transient(mock):
    mock.post("/chat/completions").respond(
        200, content=b'{"id": "chatcmpl-x", "choices": [{"ind', headers={"content-type": "application/json"}
    )
    with pytest.raises(TransientModelError, match="malformed response from http://fake.test/v1"):
        generate(make_model())


@pytest.mark.parametrize("body", [{"id": "x", "object": "chat.completion"}, {"choices": []}, {"choices": [{}]}, []])
def test_missing_choices_is_transient(mock, body):
    mock.post("/chat/completions").respond(200, json=body)
    with pytest.raises(TransientModelError, match=r"no choices\[0\]\.message"):
        generate(make_model())


# ---- rate limits and Retry-After ---------------------------------------------------------------


def rate_limited(mock, headers: dict[str, str]):
    return mock.post("/chat/completions").respond(
        429, json=error_body("Rate limit reached for requests", code="rate_limit_exceeded"), headers=headers
    )


def test_429_with_retry_after_seconds(mock):
    rate_limited(mock, {"Retry-After": "2"})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.retry_after == 2.0
    assert info.value.status == 429
    assert "HTTP 429" in str(info.value) and "Rate limit reached" in str(info.value)


def test_429_with_retry_after_ms(mock):
    rate_limited(mock, {"retry-after-ms": "1500"})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.retry_after == 1.5
    assert info.value.status == 429


def test_429_with_an_http_date_retry_after(mock):
    rate_limited(mock, {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert 27.0 <= info.value.retry_after <= 30.5


def test_429_with_only_ratelimit_reset_headers_takes_the_longest(mock):
    rate_limited(mock, {"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "250ms"})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.retry_after == 90.0
    assert info.value.status == 429


def test_429_without_any_hint_has_no_retry_after(mock):
    rate_limited(mock, {})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.retry_after is None
    assert info.value.status == 429


def test_429_with_an_unparsable_retry_after_is_still_transient(mock):
    rate_limited(mock, {"Retry-After": "soon"})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.status == 429
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "250ms"}, 90.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-reset-requests": "1h"}, 3600.0),
        ({"x-ratelimit-reset-requests": "1.5s"}, 1.5),
        ({"x-ratelimit-reset-requests": "garbage"}, None),
        ({"x-ratelimit-reset-requests": "garbage", "x-ratelimit-reset-tokens": "2s"}, 2.0),
        ({"x-ratelimit-reset-requests": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds(headers, expected):
    result = retry_after_seconds(httpx.Headers(headers))
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_retry_after_seconds_of_no_headers_and_of_an_http_date():
    assert retry_after_seconds(None) is None
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": past})) == 0.0
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 117.0 <= retry_after_seconds(httpx.Headers({"Retry-After": future})) <= 120.5


def test_retry_after_seconds_of_a_garbage_retry_after_is_none():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "garbage"})) is None


# ---- server and network failures ---------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_and_request_timeout_are_transient(mock, status):
    mock.post("/chat/completions").respond(status, json={"error": {"message": "The server had an error"}})
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert "The server had an error" in str(info.value)


@pytest.mark.parametrize("error", [httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")])
def test_connection_errors_and_timeouts_are_transient(mock, error):
    route = mock.post("/chat/completions").mock(side_effect=error)
    with pytest.raises(TransientModelError) as info:
        generate(make_model())
    assert route.call_count == 1  # max_retries=0: the runner, not the SDK, retries
    assert info.value.status is None
    assert ("Timeout" if isinstance(error, httpx.ReadTimeout) else "Connection") in str(info.value)


# ---- permanent errors --------------------------------------------------------------------------


def test_404_names_the_model_and_endpoint(mock):
    mock.post("/chat/completions").respond(
        404, json=error_body("The model `gpt-5o` does not exist or you do not have access to it.", code="model_not_found")
    )
    with pytest.raises(PermanentModelError) as info:
        generate(make_model(model="gpt-5o"))
    message = str(info.value)
    assert info.value.status == 404
    assert "'gpt-5o'" in message and "not found" in message
    assert BASE in message


def test_404_on_the_default_endpoint_names_api_openai_com():
    model = OpenAIChatModel("openai:/gpt-5o", "gpt-5o", None, KEY, transport="httpx")
    with respx.mock(base_url=OPENAI_BASE_URL) as router:
        router.post("/chat/completions").respond(404, json=error_body("The model `gpt-5o` does not exist"))
        with pytest.raises(PermanentModelError, match=re.escape(OPENAI_BASE_URL)):
            generate(model)


def test_400_names_the_offending_param(mock):
    mock.post("/chat/completions").respond(
        400,
        json=error_body("Invalid 'temperature': expected a number from 0 to 2, got 5.", param="temperature",
                        code="invalid_value"),
    )
    with pytest.raises(PermanentModelError) as info:
        generate(make_model(), params={"temperature": 5})
    assert info.value.status == 400
    assert "param: temperature" in str(info.value)
    assert "expected a number from 0 to 2" in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_tells_the_user_to_check_openai_api_key(mock, status):
    mock.post("/chat/completions").respond(status, json=error_body("Incorrect API key provided."))
    with pytest.raises(PermanentModelError) as info:
        generate(make_model())
    assert info.value.status == status
    assert "OPENAI_API_KEY" in str(info.value)
    assert "Incorrect API key provided" in str(info.value)


# ---- secrets -----------------------------------------------------------------------------------

SECRET = "sk-live-SECRET1234567890"


def assert_no_secret(message: str) -> None:
    assert SECRET not in message
    assert "SECRET" not in message and "1234567890" not in message
    # Every key-looking fragment is fully masked: "sk-***", nothing after it.
    for fragment in re.findall(r"sk-[A-Za-z0-9_\-*]*", message):
        assert fragment == "sk-***", message


@pytest.mark.parametrize("status, kind", [(401, PermanentModelError), (400, PermanentModelError),
                                          (429, TransientModelError), (500, TransientModelError)])
def test_the_key_never_appears_in_error_messages(mock, status, kind):
    echoed = "Incorrect API key provided: sk-live-S*****7890. You can find your API key at https://platform.openai.com."
    mock.post("/chat/completions").respond(status, json=error_body(echoed, code="invalid_api_key"))
    with pytest.raises(kind) as info:
        generate(make_model(api_key=SECRET))
    message = str(info.value)
    assert_no_secret(message)
    assert "sk-***" in message  # the fragment was masked, not the whole message dropped
    assert "7890" not in message


def test_a_key_echoed_in_full_in_a_non_json_body_is_masked(mock):
    mock.post("/chat/completions").respond(401, text=f"bad key {SECRET} for this org")
    with pytest.raises(PermanentModelError) as info:
        generate(make_model(api_key=SECRET))
    assert_no_secret(str(info.value))


def test_the_key_is_not_in_malformed_body_errors(mock):
    mock.post("/chat/completions").respond(200, text=f"<html>proxy saw Authorization: Bearer {SECRET}</html>")
    with pytest.raises(TransientModelError) as info:
        generate(make_model(api_key=SECRET))
    assert_no_secret(str(info.value))


# ---- model URIs --------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["openai:/gpt-4o", "openai:gpt-4o", "openai/gpt-4o", "openai://gpt-4o",
                                 "  openai:/gpt-4o  ", "OpenAI:/gpt-4o"])
def test_accepted_forms_are_canonical(uri):
    parsed = parse_model_uri(uri)
    assert parsed.canonical == "openai:/gpt-4o"
    assert (parsed.scheme, parsed.model, parsed.options) == ("openai", "gpt-4o", {})


def test_base_url_is_canonicalised():
    with_slash = parse_model_uri("openai:/llama3?base_url=http://localhost:8000/v1/")
    without = parse_model_uri("openai:/llama3?base_url=http://localhost:8000/v1")
    assert with_slash.options["base_url"] == "http://localhost:8000/v1"
    assert with_slash.canonical == without.canonical == "openai:/llama3?base_url=http://localhost:8000/v1"


def test_openai_base_url_env_is_picked_up(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.test:4000/v1/")
    parsed = parse_model_uri("openai:/gpt-4o")
    assert parsed.options["base_url"] == "http://gateway.test:4000/v1"
    assert parsed.canonical == "openai:/gpt-4o?base_url=http://gateway.test:4000/v1"
    # An explicit option wins over the environment.
    assert parse_model_uri(f"openai:/gpt-4o?base_url={BASE}").options["base_url"] == BASE


def test_api_key_in_the_uri_is_refused_without_echoing_it():
    with pytest.raises(InvalidArgument) as info:
        parse_model_uri("openai:/gpt-4o?api_key=sk-live-SECRET1234567890")
    message = str(info.value)
    assert "api_key_env" in message and "OPENAI_API_KEY" in message
    assert "SECRET" not in message and "sk-live" not in message


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(InvalidArgument) as info:
        parse_model_uri("anthropic:/claude-3")
    message = str(info.value)
    assert "unknown model URI scheme 'anthropic'" in message
    assert "evalkit" in message and "openai" in message


def test_unknown_option_is_listed_with_the_accepted_ones():
    with pytest.raises(InvalidArgument) as info:
        parse_model_uri("openai:/gpt-4o?temperature=0&base_url=http://x/v1")
    message = str(info.value)
    assert "temperature" in message
    assert "api_key_env, base_url" in message
    assert "base_url," not in message.split("accepts")[0]  # only the unknown one is listed as unknown


@pytest.mark.parametrize("uri", ["", "   ", "gpt-4o", "openai:", "openai:?base_url=http://x/v1", None])
def test_malformed_uris_are_refused(uri):
    with pytest.raises(InvalidArgument):
        parse_model_uri(uri)


@pytest.mark.parametrize("uri", ["openai:/", "openai://", "openai:/?base_url=http://x/v1"])
def test_a_uri_without_a_model_name_is_refused(uri):
    with pytest.raises(InvalidArgument):
        parse_model_uri(uri)


def test_the_canonical_form_is_a_fixed_point_for_extra_slashes():
    parsed = parse_model_uri("openai:///gpt-4o")
    assert parse_model_uri(parsed.canonical).canonical == parsed.canonical
    assert parsed.model == "gpt-4o"


@pytest.mark.parametrize("uri", ["openai:/gpt-4o", "openai:gpt-4o-mini?base_url=http://h:1/v1/",
                                 "openai:/m?api_key_env=K&base_url=http://h/v1", "evalkit:/extractive"])
def test_the_canonical_form_parses_to_itself(uri):
    canonical = parse_model_uri(uri).canonical
    assert parse_model_uri(canonical).canonical == canonical


def test_api_key_env_reads_another_variable_and_is_not_in_the_canonical_uri(monkeypatch):
    monkeypatch.setenv("MY_OTHER_KEY", "sk-other-0987654321")
    parsed = parse_model_uri("openai:/gpt-4o?api_key_env=MY_OTHER_KEY")
    assert parsed.canonical == "openai:/gpt-4o"
    model = build_model(parsed, transport="httpx")
    assert model.uri == "openai:/gpt-4o"
    with respx.mock(base_url=OPENAI_BASE_URL) as router:
        route = router.post("/chat/completions").respond(200, json=completion())
        assert generate(model).text == "4"
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-other-0987654321"


def test_api_key_env_naming_an_unset_variable_is_refused_even_for_a_local_server():
    with pytest.raises(InvalidArgument, match="MY_OTHER_KEY is not set"):
        build_model(parse_model_uri(f"openai:/llama?base_url={BASE}&api_key_env=MY_OTHER_KEY"), transport="httpx")


def test_missing_key_for_the_default_endpoint_fails_before_any_request():
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{OPENAI_BASE_URL}/chat/completions").respond(200, json=completion())
        with pytest.raises(InvalidArgument, match="OPENAI_API_KEY is not set"):
            build_model(parse_model_uri("openai:/gpt-4o"), transport="httpx")
        assert router.calls.call_count == 0


def test_a_local_base_url_works_without_a_key(mock):
    route = mock.post("/chat/completions").respond(200, json=completion(text="hi", model="llama3"))
    model = build_model(parse_model_uri(f"openai:/llama3?base_url={BASE}/"), transport="httpx")
    assert model.uri == f"openai:/llama3?base_url={BASE}"
    assert model.base_url == BASE
    response = generate(model)
    assert response.text == "hi" and response.model_snapshot == "llama3"
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content)["model"] == "llama3"


def test_build_model_uses_the_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = build_model(parse_model_uri("openai:gpt-4o-mini"), transport="httpx")
    assert (model.uri, model.model, model.base_url) == ("openai:/gpt-4o-mini", "gpt-4o-mini", None)
    with respx.mock(base_url=OPENAI_BASE_URL) as router:
        route = router.post("/chat/completions").respond(200, json=completion())
        generate(model)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="unknown transport 'curl'"):
        OpenAIChatModel("openai:/gpt-4o", "gpt-4o", BASE, KEY, transport="curl")


# ---- entry-point plugins -----------------------------------------------------------------------


class AcmeModel:
    base_url = None

    def __init__(self, model: str, options: dict[str, str]) -> None:
        self.model = model
        self.options = options

    async def generate(self, messages, params):
        return ModelResponse(text=f"acme {self.model}")

    async def aclose(self) -> None:
        return None


def install_plugin(monkeypatch, factory) -> list:
    loads = []

    def load():
        loads.append(1)
        return factory

    monkeypatch.setattr(resolve, "plugin_schemes", lambda: {"acme": SimpleNamespace(name="acme", load=load)})
    return loads


def test_a_plugin_scheme_is_parsed_and_built(monkeypatch):
    loads = install_plugin(monkeypatch, AcmeModel)
    parsed = parse_model_uri("acme:/m1?x=1")
    assert (parsed.scheme, parsed.model, parsed.options) == ("acme", "m1", {"x": "1"})
    assert parsed.canonical == "acme:/m1?x=1"

    model = build_model(parsed)
    assert isinstance(model, AcmeModel)
    assert loads == [1]
    assert (model.model, model.options) == ("m1", {"x": "1"})
    assert model.uri == "acme:/m1?x=1"
    assert asyncio.run(model.generate(MESSAGES, {})).text == "acme m1"


def test_a_plugin_scheme_is_listed_among_the_known_schemes(monkeypatch):
    install_plugin(monkeypatch, AcmeModel)
    with pytest.raises(InvalidArgument) as info:
        parse_model_uri("nope:/m1")
    assert "acme" in str(info.value) and "openai" in str(info.value)


def test_a_plugin_that_sets_its_own_uri_keeps_it(monkeypatch):
    def factory(model, options):
        instance = AcmeModel(model, options)
        instance.uri = "acme:/custom"
        return instance

    install_plugin(monkeypatch, factory)
    assert build_model(parse_model_uri("acme:m1")).uri == "acme:/custom"


def test_a_plugin_returning_something_else_than_a_model_is_refused(monkeypatch):
    install_plugin(monkeypatch, lambda model, options: object())
    with pytest.raises(InvalidArgument, match="'acme' model plugin returned object"):
        build_model(parse_model_uri("acme:/m1"))


def test_a_mistyped_key_option_is_not_echoed_in_the_error():
    with pytest.raises(InvalidArgument) as info:
        parse_model_uri("openai:/gpt-4o?apikey=sk-live-SECRET123")
    assert "SECRET" not in str(info.value) and "apikey=..." in str(info.value)
