"""evalkit's pytest plugin. Enable it in your ``conftest.py``::

    pytest_plugins = ["evalkit.testing.pytest_plugin"]

It is not registered for every pytest session (no ``pytest11`` entry point): importing evalkit
takes about a second, which projects that merely depend on evalkit should not pay. It only adds
a fixture; it changes nothing for tests that do not ask for it.

``evalkit_tracking`` gives the test a fresh SQLite tracking store in its ``tmp_path``, so the
runs it makes stay out of the project's ``evalkit.db``:

    def test_answers_are_grounded(evalkit_tracking):
        result = evalkit.evaluate(model="evalkit:/extractive", data="datasets/rag_qa.jsonl",
                                  targets="ground_truth", cache="off", report=False)
        assert_eval(result, "faithfulness/mean >= 0.8")
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.tracking import stores
from evalkit.tracking.uri import ARTIFACT_ROOT_ENV, TRACKING_URI_ENV, parse_tracking_uri


@pytest.fixture
def evalkit_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Log everything the test logs to ``<tmp_path>/evalkit.db`` and yield that tracking URI;
    the previous tracking URI is back in force after the test."""
    uri = parse_tracking_uri(f"sqlite:///{tmp_path / 'evalkit.db'}").uri
    # The environment too, so an `evalkit` CLI started by the test uses the same store; and no
    # artifact root override, so the run's artifacts land in tmp_path next to the database.
    monkeypatch.setenv(TRACKING_URI_ENV, uri)
    monkeypatch.delenv(ARTIFACT_ROOT_ENV, raising=False)
    previous = stores._tracking_uri  # None ("the default") is restored as None, not as what it resolved to
    stores.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        stores.set_tracking_uri(previous)
        stores.close_store(uri)

