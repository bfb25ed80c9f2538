"""Readable default run names, like ``bright-otter-417``."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle", "glad",
    "grand", "keen", "kind", "lively", "lucid", "merry", "mild", "nimble", "noble", "polite", "proud",
    "quick", "quiet", "rapid", "sharp", "shy", "silent", "smart", "steady", "sunny", "swift", "tidy",
    "vivid", "warm", "wise", "witty", "zesty",
)
_NOUNS = (
    "badger", "bison", "crane", "dolphin", "eagle", "falcon", "ferret", "finch", "fox", "gecko",
    "heron", "ibis", "koala", "lark", "lemur", "lynx", "marten", "moose", "newt", "orca", "otter",
    "owl", "panda", "puffin", "quail", "raven", "robin", "salmon", "seal", "sparrow", "stork", "swan",
    "tapir", "tern", "trout", "walrus", "wolf", "wren",
)


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"
