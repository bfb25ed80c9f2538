"""existing_objects_frozen: the collector skips what existed before the block, and only there."""

from __future__ import annotations

import gc

import pytest

from evalkit.heap import existing_objects_frozen


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def _tracked(thing: object) -> bool:
    """Whether ``thing`` is in one of the generations the collector walks (not the frozen one)."""
    return any(o is thing for o in gc.get_objects())


def test_objects_are_frozen_inside_the_block_and_given_back_after():
    before = [1, 2]  # a container: the collector tracks it
    assert gc.get_freeze_count() == 0 and _tracked(before)
    with existing_objects_frozen():
        during = [3]
        assert gc.get_freeze_count() > 0 and not _tracked(before) and _tracked(during)
    assert gc.get_freeze_count() == 0 and _tracked(before)


def test_a_block_inside_a_frozen_heap_leaves_it_to_whoever_froze_it():
    before = [1, 2]
    gc.freeze()
    with existing_objects_frozen():
        pass
    assert gc.get_freeze_count() > 0 and not _tracked(before)  # not unfrozen by the inner block


def test_the_heap_is_given_back_when_the_block_raises():
    with pytest.raises(RuntimeError), existing_objects_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_evaluate_gives_the_heap_back(tmp_path):
    import pandas as pd

    import evalkit as ek

    ek.set_tracking_uri(str(tmp_path / "store.db"))
    frame = pd.DataFrame({"inputs": ["a", "b"], "ground_truth": ["x", "y"], "prediction": ["x", "z"]})
    result = ek.evaluate(data=frame, targets="ground_truth", predictions="prediction", evaluators=["exact_match"],
                         report=False, progress=False)
    assert result.metrics["exact_match/v1/mean"] == 0.5 and gc.get_freeze_count() == 0

