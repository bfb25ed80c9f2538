"""Token counts with tiktoken, offline: the BPE files ship in ``evalkit/inference/tokenizers/``.

Counts are estimates, used when an endpoint reports no usage. Models are mapped to an
encoding by name prefix; a model evalkit does not recognise (an open-weights model behind an
OpenAI-compatible endpoint, say) is counted with ``o200k_base``, which only approximates its
real tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken_ext import openai_public

from evalkit.errors import EvalkitError
from evalkit.inference.pricing import bare_model_name
from evalkit.inference.providers.base import Message, Usage

_TOKENIZER_DIR = Path(__file__).with_name("tokenizers")

# Encoding name -> (tiktoken constructor, shipped file: sha1 of tiktoken's download URL, which
# is the name tiktoken looks for in TIKTOKEN_CACHE_DIR; sha256 copied from tiktoken_ext).
_ENCODINGS: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "cl100k_base": (
        openai_public.cl100k_base,
        "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        openai_public.o200k_base,
        "fb374d419588a4632f3f557e76b4b70aebbca790",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
# Checked in order: "gpt-4o" must match before "gpt-4".
_PREFIXES = (
    (("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4"), "o200k_base"),
    (("gpt-4", "gpt-3.5", "text-embedding-"), "cl100k_base"),
)
_DEFAULT_ENCODING = "o200k_base"

_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3

_env_lock = threading.Lock()


@functools.cache
def _load(name: str) -> tiktoken.Encoding:
    constructor, filename, sha256 = _ENCODINGS[name]
    path = _TOKENIZER_DIR / filename
    # tiktoken deletes a cached file whose hash is wrong, then downloads it again: check first so
    # a damaged install fails here, offline, instead of rewriting the package directory.
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EvalkitError(f"tokenizer file for {name} is missing from the evalkit install: {path}") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EvalkitError(f"tokenizer file for {name} is damaged (sha256 mismatch), reinstall evalkit: {path}")
    # TIKTOKEN_CACHE_DIR is process-wide, so set it only while tiktoken reads (it also checks the
    # sha256) and put back whatever the user had.
    with _env_lock:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(_TOKENIZER_DIR)
        try:
            spec = constructor()
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    return tiktoken.Encoding(**spec)


def encoding_for(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding for ``model`` (provider prefixes such as ``openai:/`` ignored).

    ``o200k_base`` for gpt-4o, gpt-4.1, gpt-5 and the o1/o3/o4 families; ``cl100k_base`` for
    older gpt-4, gpt-3.5 and text-embedding models; ``o200k_base`` as an estimate for anything
    else. Loaded from the files shipped with evalkit, never from the network.
    """
    name = bare_model_name(model)
    for prefixes, encoding in _PREFIXES:
        if name.startswith(prefixes):
            return _load(encoding)
    return _load(_DEFAULT_ENCODING)


def count_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``. Special-token markers such as ``<|endoftext|>`` in the
    text are counted as ordinary text, as an API would see them in user content."""
    return len(encoding_for(model).encode_ordinary(text))


def count_message_tokens(messages: list[Message], model: str) -> int:
    """Estimated prompt tokens of a chat request, following OpenAI's published recipe: every
    message costs 3 tokens plus the tokens of its role and content (and 1 more for a
    ``name``), and the reply is primed with 3 more. Real counts can differ by a few tokens per
    message, and more for tools or images, which this does not see."""
    encoding = encoding_for(model)
    total = _REPLY_PRIMING
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += len(encoding.encode_ordinary(value))
            if key == "name":
                total += _TOKENS_PER_NAME
    return total


def estimate_usage(messages: list[Message], completion: str, model: str) -> Usage:
    """Usage of one call counted locally, for endpoints that report none (``estimated=True``)."""
    return Usage(
        input_tokens=count_message_tokens(messages, model),
        output_tokens=count_tokens(completion, model),
        estimated=True,
    )
