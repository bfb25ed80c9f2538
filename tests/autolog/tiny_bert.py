"""A 2-layer BERT with a 40-word vocabulary and its tokenizer, built from a config and a vocab
file written on the spot (nothing from a model hub), and a small synthetic sentiment set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

POSITIVE = ["amazing", "great", "good", "love", "excellent", "happy", "perfect", "nice"]
NEGATIVE = ["awful", "bad", "terrible", "hate", "broken", "poor", "sad", "worst"]
FILLER = ["this", "product", "is", "the", "it", "was", "really", "very", "so", "a", "i", "item"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + POSITIVE + NEGATIVE + FILLER + ["!", "."]) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def model(seed: int = 0):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(POSITIVE) + len(NEGATIVE) + len(FILLER) + 2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
        num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    return BertForSequenceClassification(config)


def rows(tok, n: int = 40, seed: int = 0) -> list[dict]:
    """``n`` encoded reviews, half positive (label 1), half negative."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, 3)) + [str(rng.choice(POSITIVE if label else NEGATIVE))]
        encoded = tok(" ".join(words), padding="max_length", max_length=12, truncation=True)
        out.append({**encoded, "labels": label})
    return out
