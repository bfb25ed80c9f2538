"""Keep Python's cycle collector off the objects that existed before an evaluation.

An evaluation allocates several objects per request that live as long as the request (hundreds
of milliseconds), so they survive the young generations and trigger full collections, and each
full collection walks every object of the process: the imported libraries (pandas, pyarrow,
openai, ...), some 300,000 objects, about 0.2 s a time. Measured on 2,000 rows at concurrency
256 (bench/bench_runner.py, issue 17), full collections took a quarter of the client's CPU.
``gc.freeze()`` moves the objects that exist now to a generation the collector skips; they
return to the oldest generation when the evaluation ends, so nothing is kept longer than it
would have been, and garbage made during the evaluation is collected as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def existing_objects_frozen() -> Iterator[None]:
    """Within the block, the collector skips the objects that existed when it began.

    Does nothing when objects are already frozen (an outer evaluation, a concurrent one in
    another thread, or an application that froze its heap itself, as pre-forking servers do):
    whoever froze them unfreezes them."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

