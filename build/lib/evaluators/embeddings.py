"""Offline sentence embeddings for evaluators: WordLlama's ``l2_supercat`` model at 256
dimensions (static token embeddings, mean-pooled), whose weights and tokenizer ship inside the
``wordllama`` wheel, so nothing is ever downloaded.

``similarity(a, b)[i] = clip(cos(e(a[i]), e(b[i])), 0, 1)``: a negative cosine means unrelated
as much as zero does, and a text that embeds to the zero vector (empty, or no known tokens)
has similarity 0 with anything.
"""

from __future__ import annotations

import functools
import logging
import unittest.mock
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evalkit.plugins import require_extra

OFFLINE_SCORERS = "offline-scorers"  # the extra that installs the offline models

if TYPE_CHECKING:
    from wordllama import WordLlamaInference


def require_model(what: str) -> None:
    """Raise MissingExtra unless the offline embedding model's package is installed."""
    require_extra("wordllama", OFFLINE_SCORERS, f"{what} (the offline embedding model)")


@functools.cache
def model() -> WordLlamaInference:
    """The embedding model, loaded once per process from the wordllama package's own folder."""
    # wordllama calls logging.basicConfig(level=INFO) on import; the host application owns
    # logging. Undoing it afterwards is too late when the model loads in a worker thread: other
    # threads would log at INFO (every httpx request) in between. So the call is a no-op here.
    with unittest.mock.patch.object(logging, "basicConfig", lambda *args, **kwargs: None):
        import wordllama
    # The wheel holds weights/l2_supercat_256.safetensors and tokenizers/<config>.json, the
    # layout wordllama expects of a cache folder, so the package folder is the cache.
    return wordllama.WordLlama.load(
        "l2_supercat", dim=256, cache_dir=Path(wordllama.__file__).parent, disable_download=True
    )


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length float64 embeddings, one row per text (zero rows for texts with no tokens)."""
    vectors = model().embed(list(texts)).astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def similarity(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """Row-wise cosine similarity of ``texts_a[i]`` and ``texts_b[i]``, clipped to [0, 1].

    All texts are embedded in one batched call, each distinct text once.
    """
    if len(texts_a) != len(texts_b):
        raise ValueError(f"similarity needs pairs: {len(texts_a)} texts against {len(texts_b)}")
    distinct = list(dict.fromkeys([*texts_a, *texts_b]))
    position = {text: i for i, text in enumerate(distinct)}
    vectors = embed(distinct)
    a = vectors[[position[t] for t in texts_a]]
    b = vectors[[position[t] for t in texts_b]]
    return np.clip(np.einsum("ij,ij->i", a, b), 0.0, 1.0)
