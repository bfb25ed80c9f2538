"""Embeddings from an OpenAI-compatible ``/embeddings`` endpoint, in batched requests.

Named like a model URI: ``openai:/text-embedding-3-small`` (``?base_url=...`` for another
server; the key comes from ``OPENAI_API_KEY``). Used where scores must match a tool that
embeds with such an endpoint; the default is the offline model in ``embeddings.py``.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qsl

import numpy as np
import openai

from evalkit.errors import InvalidArgument
from evalkit.inference.own_calls import own_call

BATCH = 256


def parse_embeddings_uri(uri: str) -> tuple[str, str | None]:
    """The model and base URL of ``openai:/<model>[?base_url=...]``; InvalidArgument otherwise."""
    scheme, _, rest = uri.partition(":")
    model, _, query = rest.lstrip("/").partition("?")
    if scheme != "openai" or not model:
        raise InvalidArgument(f"embeddings must be 'openai:/<model>[?base_url=...]', got {uri!r}")
    options = dict(parse_qsl(query))
    unknown = set(options) - {"base_url"}
    if unknown:
        raise InvalidArgument(f"unknown option(s) {sorted(unknown)} in embeddings URI; only base_url is accepted")
    return model, options.get("base_url") or os.environ.get("OPENAI_BASE_URL")


class EndpointEmbedder:
    """One client for the endpoint of ``uri``, sending ``BATCH`` texts per request, the batches
    of one call at once. Close it with ``aclose`` in the event loop that used it."""

    def __init__(self, uri: str) -> None:
        self.model, base_url = parse_embeddings_uri(uri)
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
                                          max_retries=3)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embedding rows for ``texts``."""
        batches = await asyncio.gather(*(self._batch(texts[start:start + BATCH])
                                         for start in range(0, len(texts), BATCH)))
        matrix = np.asarray([vector for batch in batches for vector in batch], dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        with own_call():  # an evaluator's call: evaluate() accounts for it, autologging must not
            response = await self._client.embeddings.create(model=self.model, input=texts)
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

    async def aclose(self) -> None:
        await self._client.close()


async def embed(uri: str, texts: list[str]) -> np.ndarray:
    """Unit-length embedding rows for ``texts``, with a client of its own."""
    embedder = EndpointEmbedder(uri)
    try:
        return await embedder.embed(texts)
    finally:
        await embedder.aclose()


async def endpoint_similarity(uri: str, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
    """Row-wise cosine similarity of ``texts_a[i]`` and ``texts_b[i]``."""
    vectors = await embed(uri, texts_a + texts_b)
    return np.einsum("ij,ij->i", vectors[: len(texts_a)], vectors[len(texts_a):])
