"""The ``llm`` flavor: an LLM application as data. Its one file, ``llm.json``, holds the model URI,
the prompt template (system and user), the inference params, optional retrieval settings (kept
as metadata: top_k, chunking, embedding model...) and an optional ``entrypoint``
(``module:function``) for an application that does its own retrieval.

    ek.log_model("openai:/gpt-4o-mini", flavor="llm",
                 prompt=[{"role": "system", "content": "Classify the sentiment."},
                         {"role": "user", "content": "{{ input }}"}],
                 inference_params={"temperature": 0}, retrieval={"top_k": 5})

Loaded, it answers ``predict(["..."])`` by rendering the prompt for each input and calling the
model (or the entry point, called like a model function in ``evaluate``: ``fn(input)``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.models.flavors.base import Flavor, LoadedModel, input_texts

SPEC_FILE = "llm.json"
_PREDICT_CONCURRENCY = 8


@dataclass(frozen=True)
class LLMSpec:
    """What an ``llm`` bundle holds. ``prompt`` is None for evalkit's default prompt."""

    model_uri: str | None
    prompt: list[dict[str, str]] | None = None
    inference_params: dict[str, Any] = field(default_factory=dict)
    retrieval: dict[str, Any] = field(default_factory=dict)
    entrypoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model_uri": self.model_uri, "prompt": self.prompt, "inference_params": self.inference_params,
                "retrieval": self.retrieval, "entrypoint": self.entrypoint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMSpec:
        return cls(data.get("model_uri"), data.get("prompt"), dict(data.get("inference_params") or {}),
                   dict(data.get("retrieval") or {}), data.get("entrypoint"))


def import_entrypoint(entrypoint: str) -> Callable[..., Any]:
    """The function ``module:function`` names; ``InvalidArgument`` says why it cannot be imported."""
    module_name, sep, attribute = entrypoint.partition(":") if isinstance(entrypoint, str) else ("", "", "")
    if not sep or not module_name or not attribute:
        raise InvalidArgument(f"entrypoint must be 'module:function', got {entrypoint!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the same problem for the user
        raise InvalidArgument(f"entrypoint {entrypoint!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise InvalidArgument(f"entrypoint {entrypoint!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise InvalidArgument(f"entrypoint {entrypoint!r} is not callable")
    return target


def check_spec(spec: LLMSpec) -> LLMSpec:
    """``spec`` if it can be run: a valid model URI (or an entry point), prompt, params and
    retrieval settings; an entry point that imports."""
    from evalkit.evaluation.prompts import resolve_prompt
    from evalkit.inference.params_check import check_inference_params
    from evalkit.inference.providers.resolve import parse_model_uri

    if spec.model_uri is None and spec.entrypoint is None:
        raise InvalidArgument("an llm model needs a model URI (e.g. 'openai:/gpt-4o-mini') or an entrypoint")
    if spec.model_uri is not None:
        parse_model_uri(spec.model_uri)
    if spec.prompt is not None:
        resolve_prompt(spec.prompt, has_contexts=False)
    check_inference_params(spec.inference_params)
    if not isinstance(spec.retrieval, dict):
        raise InvalidArgument(f"retrieval must be a dict of settings (top_k, chunking, ...), got {spec.retrieval!r}")
    try:
        json.dumps(spec.retrieval)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"retrieval settings must be JSON values: {exc}") from None
    if spec.entrypoint is not None:
        import_entrypoint(spec.entrypoint)
    return spec


def _messages(prompt: Any) -> list[dict[str, str]] | None:
    """The prompt as a list of {role, content} messages (what the bundle stores)."""
    from evalkit.evaluation.prompts import PromptTemplate, resolve_prompt

    if prompt is None:
        return None
    template = prompt if isinstance(prompt, PromptTemplate) else resolve_prompt(prompt, has_contexts=False)
    return ([{"role": "system", "content": template.system}] if template.system is not None else []) + [
        {"role": "user", "content": template.user}]


class LLMFlavor(Flavor):
    name = "llm"

    def save(self, model: Any, path: Path, prompt: Any = None, inference_params: dict[str, Any] | None = None,
             retrieval: dict[str, Any] | None = None, entrypoint: str | None = None, **options: Any) -> dict[str, Any]:
        """``model`` is a model URI (or None with an ``entrypoint``); ``prompt`` a template string,
        a list of {role, content} messages or a PromptTemplate."""
        if options:
            raise InvalidArgument(f"unknown option(s) of the llm flavor: {', '.join(sorted(options))}; it takes "
                                  "prompt, inference_params, retrieval and entrypoint")
        if model is not None and not isinstance(model, str):
            raise InvalidArgument(f"the llm flavor saves a model URI such as 'openai:/gpt-4o-mini', got "
                                  f"{type(model).__name__}")
        spec = check_spec(LLMSpec(model, _messages(prompt), dict(inference_params or {}), dict(retrieval or {}),
                                  entrypoint))
        (path / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        return {"model_uri": spec.model_uri, "entrypoint": spec.entrypoint}

    def load(self, path: Path, metadata: dict[str, Any]) -> LLMModel:
        spec = LLMSpec.from_dict(json.loads((path / SPEC_FILE).read_text(encoding="utf-8")))
        return LLMModel(check_spec(spec))


class LLMModel(LoadedModel):
    """A loaded ``llm`` bundle: ``spec`` is what it holds, ``predict`` runs it."""

    def __init__(self, spec: LLMSpec) -> None:
        self.spec = spec

    def predict(self, inputs: Any) -> list[str]:
        from evalkit.inference.sync import run_sync

        texts = input_texts(inputs)
        if self.spec.entrypoint is not None:
            function = import_entrypoint(self.spec.entrypoint)
            return [str(function(text)) for text in texts]
        return run_sync(self._answer_all(texts))

    async def _answer_all(self, texts: list[str]) -> list[str]:
        from evalkit.evaluation.prompts import resolve_prompt
        from evalkit.inference.providers.resolve import build_model, parse_model_uri

        template = resolve_prompt(self.spec.prompt, has_contexts=False)
        model = build_model(parse_model_uri(self.spec.model_uri))  # type: ignore[arg-type]
        slots = asyncio.Semaphore(_PREDICT_CONCURRENCY)

        async def answer(text: str) -> str:
            async with slots:
                response = await model.generate(template.render(text, [], {"inputs": text}), self.spec.inference_params)
                return response.text

        try:
            return list(await asyncio.gather(*(answer(text) for text in texts)))
        finally:
            await model.aclose()
