"""Model URIs: parsing them into one canonical form and building the model they name.

Accepted forms:
- ``openai:/gpt-4o``, ``openai:gpt-4o``, ``openai/gpt-4o`` → ``openai:/gpt-4o``. An
  OpenAI-compatible server is named by ``?base_url=http://host:8000/v1`` or ``$OPENAI_BASE_URL``;
  ``?api_key_env=NAME`` reads the key from another variable than ``OPENAI_API_KEY``.
- ``evalkit:/extractive``: the embedded offline baseline (no key, no network).
- ``<scheme>:/<model>`` for providers registered under the ``evalkit.model_providers`` entry-point group:
  the entry point is a factory ``(model: str, options: dict[str, str]) -> ChatModel``.

The canonical URI keeps what changes answers (provider, model, base URL) and never a key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from evalkit import plugins
from evalkit.errors import InvalidArgument
from evalkit.inference.providers.base import ChatModel
from evalkit.redaction import redact_url

BUILTIN_SCHEMES = ("openai", "evalkit")
_OPTIONS = {"openai": {"base_url", "api_key_env"}, "evalkit": set()}
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9_.+-]*)(?::/{0,2}|/)(?P<model>[^?]+?)(?:\?(?P<query>.*))?$")


@dataclass(frozen=True)
class ModelURI:
    scheme: str
    model: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        """The URI as logged and as the cache knows it: no key, and a base URL without credentials."""
        query = {k: redact_url(v) if k == "base_url" else v
                 for k, v in sorted(self.options.items()) if k != "api_key_env"}
        return f"{self.scheme}:/{self.model}" + (f"?{urlencode(query, safe=':/*@')}" if query else "")


def parse_model_uri(uri: str) -> ModelURI:
    """Parse ``uri``; errors say which forms are accepted and list the known schemes."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidArgument(f"model must be a model URI such as 'openai:/gpt-4o' or a callable, got {uri!r}")
    match = _URI.match(uri.strip())
    model = match["model"].strip().lstrip("/") if match else ""
    if not model:
        raise InvalidArgument(
            f"malformed model URI {_shown(uri)!r}: use <provider>:/<model>, e.g. 'openai:/gpt-4o' or 'evalkit:/extractive'"
        )
    scheme = match["scheme"].lower()
    options = dict(parse_qsl(match["query"] or "", keep_blank_values=True))
    if "api_key" in options:
        raise InvalidArgument(
            "do not put an API key in the model URI (it would be logged): set OPENAI_API_KEY, "
            "or name another variable with ?api_key_env=NAME"
        )
    known = _OPTIONS.get(scheme)
    if scheme not in BUILTIN_SCHEMES and scheme not in plugin_schemes():
        raise InvalidArgument(
            f"unknown model URI scheme {scheme!r} in {_shown(uri)!r}: known schemes are "
            f"{', '.join(sorted(set(BUILTIN_SCHEMES) | set(plugin_schemes())))}"
        )
    if known is not None and set(options) - known:
        raise InvalidArgument(
            f"unknown option(s) {', '.join(sorted(set(options) - known))} in model URI {_shown(uri)!r}; "
            f"{scheme} accepts: {', '.join(sorted(known)) or 'none'}"
        )
    if scheme == "openai" and "base_url" not in options and os.environ.get("OPENAI_BASE_URL"):
        options["base_url"] = os.environ["OPENAI_BASE_URL"]
    if "base_url" in options:
        options["base_url"] = check_base_url(options["base_url"].rstrip("/"))
    return ModelURI(scheme, model, options)


def check_base_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; the error never quotes its credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise InvalidArgument(f"base_url {redact_url(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"base_url {redact_url(url)!r} must be an http:// or https:// URL with a host, "
            "e.g. http://localhost:8000/v1"
        )
    return url


def _shown(uri: str) -> str:
    """The URI for an error message, option values hidden: a mistyped key option must not leak."""
    base, _, query = uri.strip().partition("?")
    if not query:
        return base
    return base + "?" + "&".join(f"{name}=..." for name, _ in parse_qsl(query, keep_blank_values=True))


def plugin_schemes() -> dict[str, Any]:
    """Model providers installed under the ``evalkit.model_providers`` entry-point group, by URI scheme."""
    return dict(plugins.find_plugins(plugins.MODEL_PROVIDERS))


def build_model(uri: ModelURI, transport: str | None = None, timeout: float = 60.0, max_connections: int = 100) -> ChatModel:
    """The ChatModel for a parsed URI. Raises before any request if a key is missing."""
    if uri.scheme == "openai":
        from evalkit.inference.providers.openai_chat import OpenAIChatModel

        base_url = uri.options.get("base_url")
        key_env = uri.options.get("api_key_env", "OPENAI_API_KEY")
        api_key = os.environ.get(key_env)
        if not api_key:
            if base_url is None or key_env != "OPENAI_API_KEY":
                raise InvalidArgument(
                    f"{key_env} is not set: the OpenAI API needs a key. Export {key_env}=sk-... "
                    "(for a local OpenAI-compatible server, pass ?base_url=http://host:port/v1)"
                )
            api_key = "not-needed"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        return OpenAIChatModel(
            uri.canonical, uri.model, base_url, api_key,
            transport=transport or os.environ.get("EVALKIT_HTTP_TRANSPORT", "aiohttp"), timeout=timeout,
            max_connections=max_connections,
        )
    if uri.scheme == "evalkit":
        if uri.model != "extractive":
            raise InvalidArgument(f"unknown embedded model {uri.model!r}: the embedded model is 'evalkit:/extractive'")
        from evalkit.inference.providers.offline import OfflineExtractiveModel

        return OfflineExtractiveModel()
    factory = plugin_schemes()[uri.scheme].load()
    model = factory(uri.model, dict(uri.options))
    if not callable(getattr(model, "generate", None)):
        raise InvalidArgument(f"the {uri.scheme!r} model plugin returned {type(model).__name__}, not a ChatModel")
    if not getattr(model, "uri", None):
        model.uri = uri.canonical
    return model
