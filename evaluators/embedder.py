"""The embeddings an evaluator is configured with, for one run: the offline model
(``embeddings.py``, the default) or an endpoint (``embeddings="openai:/<model>[?base_url=...]"``,
``endpoint_embeddings.py``).

Each distinct text is embedded once per run (among the last ``KEPT_VECTORS`` texts: a run
scores its rows a chunk at a time, and remembering every text of a million-row run would take
gigabytes), and the texts asked for by calls made in the same turn of the event loop (e.g. many
rows at once) go out together, in batched requests.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import numpy as np
from evalkit.evaluators import embeddings
from evalkit.evaluators.endpoint_embeddings import EndpointEmbedder

KEPT_VECTORS = 50_000  # about 100 MB of 256-dimension vectors


class Embedder:
    """``await embedder.embed(texts)``: unit-length float64 rows, one per text."""

    def __init__(self, uri: str | None = None, what: str = "this evaluator") -> None:
        if uri is None:
            embeddings.require_model(what)
        self.uri = uri
        self._endpoint: EndpointEmbedder | None = None
        self._vectors: dict[str, asyncio.Future[np.ndarray]] = {}
        self._queue: list[str] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        for text in texts:
            if text not in self._vectors:
                self._vectors[text] = loop.create_future()
                if not self._queue:
                    loop.call_soon(self._flush)
                self._queue.append(text)
        if not texts:
            return np.zeros((0, 0))
        futures = [self._vectors[text] for text in texts]  # held here: older texts may be forgotten meanwhile
        return np.stack([await future for future in futures])

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list[str]) -> None:
        try:
            if self.uri is None:
                vectors = await asyncio.to_thread(embeddings.embed, batch)
            else:
                self._endpoint = self._endpoint or EndpointEmbedder(self.uri)
                vectors = await self._endpoint.embed(batch)
        except Exception as exc:  # noqa: BLE001 - every caller waiting on this batch gets the error
            for text in batch:
                future = self._vectors.pop(text)
                future.set_exception(exc)
                future.exception()  # retrieved: callers that gave up on an earlier text log nothing
            return
        for text, vector in zip(batch, vectors, strict=True):
            self._vectors[text].set_result(vector)
        excess = len(self._vectors) - KEPT_VECTORS
        if excess > 0:
            for text in list(itertools.islice(self._vectors, excess)):
                if self._vectors[text].done():  # the oldest answered texts; pending ones stay
                    del self._vectors[text]

    async def aclose(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.aclose()
            self._endpoint = None
