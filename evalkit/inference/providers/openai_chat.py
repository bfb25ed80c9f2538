"""OpenAI and OpenAI-compatible chat endpoints (vLLM, Ollama, llama.cpp, gateways) through the
official ``openai`` client.

Requests go through aiohttp by default: with the SDK's default httpx transport, throughput
collapses past ~16 concurrent requests (REFERENCE §4). ``transport="httpx"`` keeps httpx, which
respx can intercept in tests. Requests go through the client's raw-request method
(``client.request(httpx.Response, options)``, what its documented ``client.post`` calls): it keeps the
client's auth, base URL, headers, retries and error types but skips the SDK's per-request parameter
transform and response parsing, which cost more CPU than everything else per request (about 1.3 ms;
measured in bench/bench_runner.py).

Two more per-request costs are cut where they buy nothing (bench/bench_runner.py, issue 17): the
endpoint's URL is merged with the client's base URL once, not parsed twice per request, and httpx
hands a response to urllib's cookie jar only when it sets a cookie (building urllib's request and
message adapters for every response cost about as much as the SDK's whole request building).
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import openai
from openai._models import FinalRequestOptions

from evalkit.errors import PermanentModelError, TransientModelError
from evalkit.inference.params_check import CLIENT_OPTIONS, header_secrets
from evalkit.inference.providers.base import Message, ModelResponse, Usage
from evalkit.redaction import RedactingFilter, redact, redact_url, url_secrets

OPENAI_BASE_URL = "https://api.openai.com/v1"
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        uri: str,
        model: str,
        base_url: str | None,
        api_key: str,
        transport: str = "aiohttp",
        timeout: float = 60.0,
        max_connections: int = 100,
    ) -> None:
        self.uri = uri
        self.model = model
        # The endpoint as logged, compared and shown in errors; the client alone gets the real one.
        self.base_url = redact_url(base_url) if base_url else None
        self._secrets = [api_key, *url_secrets(base_url)]
        self._log_filter: RedactingFilter | None = None
        # One pooled connection per concurrent request, all kept alive: the clients' defaults
        # (100, of which 20 kept alive) reopen connections and cap throughput at high concurrency.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if transport == "aiohttp":
            http_client: Any = _AioHttpClient(timeout=timeout, limits=limits)
        elif transport == "httpx":
            http_client = _HttpxClient(timeout=timeout, limits=limits)
        else:
            raise ValueError(f"unknown transport {transport!r}: use 'aiohttp' or 'httpx'")
        endpoint, basic_auth = _split_userinfo(base_url or OPENAI_BASE_URL)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=endpoint, max_retries=0, timeout=timeout, http_client=http_client,
            default_headers={"Authorization": basic_auth} if basic_auth else None,
        )
        # The client's own merge of its base URL and the path, done once: given an absolute URL,
        # it parses nothing per request (a relative path is parsed and merged twice each time).
        chat_url = self._client._prepare_url("/chat/completions")
        # What the client's ``post`` builds per request (a pydantic model whose defaults it deep-copies:
        # about 60 us a request), built once; each request copies it with its own body.
        self._request = FinalRequestOptions.construct(method="post", url=chat_url)  # type: ignore[arg-type]  # an httpx.URL is taken as is

    async def generate(self, messages: list[Message], params: dict[str, Any]) -> ModelResponse:
        fields = {k: v for k, v in params.items() if k not in CLIENT_OPTIONS}
        headers = params.get("extra_headers") or {}
        if self._log_filter is None:  # installed on first use: params carry the header secrets
            self._log_filter = RedactingFilter([*self._secrets, *header_secrets(params)]).install()
        try:
            body = {"model": self.model, "messages": messages, **fields, **(params.get("extra_body") or {})}
            request = self._request.model_copy(update={"json_data": body, "headers": headers} if headers else
                                               {"json_data": body})
            response = await self._client.request(httpx.Response, request)
            body = json.loads(response.content)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, params) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise TransientModelError(f"{type(exc).__name__}: {self._redact(str(exc), params)}") from None
        except (ValueError, openai.APIResponseValidationError) as exc:
            raise TransientModelError(f"malformed response from {self._where()}: {self._redact(str(exc), params)[:200]}") from None
        return self._parse(body)

    def _parse(self, body: dict[str, Any]) -> ModelResponse:
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise TransientModelError(f"malformed response from {self._where()}: no choices[0].message") from None
        usage = None
        reported = body.get("usage")
        if isinstance(reported, dict) and "prompt_tokens" in reported:
            details = reported.get("prompt_tokens_details") or {}
            usage = Usage(
                input_tokens=int(reported.get("prompt_tokens") or 0),
                output_tokens=int(reported.get("completion_tokens") or 0),
                cached_input_tokens=int(details.get("cached_tokens") or 0),
            )
        extra = {"finish_reason": choice.get("finish_reason")} if choice.get("finish_reason") else {}
        return ModelResponse(text=text, usage=usage, model_snapshot=body.get("model"), extra=extra)

    def _status_error(self, exc: openai.APIStatusError, params: dict[str, Any]) -> Exception:
        status = exc.status_code
        message = self._redact(_error_message(exc), params)
        if status == 429 or status >= 500 or status == 408:
            return TransientModelError(
                f"HTTP {status} from {self._where()}: {message}", retry_after=retry_after_seconds(exc.response.headers),
                status=status,
            )
        if status == 404:
            return PermanentModelError(f"model {self.model!r} not found at {self._where()} (HTTP 404): {message}", status)
        if status in (401, 403):
            return PermanentModelError(
                f"the API key was refused by {self._where()} (HTTP {status}): {message}. "
                "Check OPENAI_API_KEY (or the variable named by api_key_env)", status,
            )
        return PermanentModelError(f"HTTP {status} from {self._where()}: {message}", status)

    def _where(self) -> str:
        return self.base_url or OPENAI_BASE_URL

    def _redact(self, text: str, params: dict[str, Any] | None = None) -> str:
        return redact(text, [*self._secrets, *header_secrets(params or {})])

    async def aclose(self) -> None:
        await self._client.close()
        if self._log_filter is not None:
            self._log_filter.remove()
            self._log_filter = None


class _SetCookieOnly(httpx.Cookies):
    """A cookie jar that reads a response only when it sets a cookie: the same cookies as httpx's,
    without building urllib's request and message adapters for every response."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


class _LeanCookies:
    """Gives an httpx client the ``_SetCookieOnly`` jar (httpx reads and replaces its jar through
    the ``cookies`` property)."""

    _jar: _SetCookieOnly

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._jar = _SetCookieOnly(cookies)


class _AioHttpClient(_LeanCookies, openai.DefaultAioHttpClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = None


class _HttpxClient(_LeanCookies, openai.DefaultAsyncHttpxClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = None


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """The URL without its ``user:password@`` part, and that part as a basic-auth header value.

    Credentials in a base URL mean basic auth (what httpx does with them); sending them as a header
    works the same on every transport (aiohttp refuses them in the URL next to a bearer key) and
    keeps them out of the URLs that HTTP libraries log."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return urlunsplit(parts._replace(netloc=netloc)), "Basic " + base64.b64encode(credentials.encode()).decode()


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            param = error.get("param")
            return f"{error['message']}" + (f" (param: {param})" if param else "")
    return str(exc.message)


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a server asked for: ``Retry-After`` (seconds or an HTTP date), ``retry-after-ms``,
    or the longest of OpenAI's ``x-ratelimit-reset-requests`` / ``-tokens`` (like ``1s``, ``6m0s``)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):  # neither seconds nor a date: ignore the header
                pass
    resets = [_duration(headers.get(name)) for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")]
    resets = [r for r in resets if r is not None]
    return max(resets) if resets else None


def _duration(text: str | None) -> float | None:
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000
