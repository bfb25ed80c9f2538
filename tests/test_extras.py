"""The core install pins nothing exactly and leaves optional dependencies to extras; a feature
whose extra is missing says which one to install, before any model call, and a default evaluator
that cannot run is skipped with that message, never silently."""

from __future__ import annotations

import importlib.util
import re
from importlib.metadata import requires

import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import EvaluationWarning, MissingExtra


def without(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled to evalkit's extra checks."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in modules else find_spec(name, *args))


def data() -> pd.DataFrame:
    return pd.DataFrame({"inputs": ["What colour is lamp 1?"], "contexts": [["Lamp 1 is blue."]],
                         "ground_truth": ["Lamp 1 is blue."]})


def test_the_core_install_pins_nothing_exactly_and_leaves_heavy_packages_to_extras():
    core = [r for r in requires("evalkit") if "extra ==" not in r]
    assert not [r for r in core if re.search(r"==(?!=)", r.split(";")[0])], core
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in core}
    assert not names & {"alt-profanity-check", "scikit-learn", "wordllama", "datasets", "psycopg", "ragas", "boto3"}


def test_a_default_evaluator_whose_extra_is_missing_is_skipped_and_said(monkeypatch):
    without(monkeypatch, "profanity_check")
    with pytest.warns(EvaluationWarning, match=r"the default evaluator toxicity is skipped: .*pip install "
                                               r"'evalkit\[offline-scorers\]'"):
        result = ek.evaluate(model="evalkit:/extractive", data=data(), targets="ground_truth", progress=False)
    assert not any(key.startswith("toxicity/") for key in result.metrics)
    assert "exact_match/v1/mean" in result.metrics
    assert any("toxicity is skipped" in line for line in result.warnings)


def test_an_evaluator_asked_for_by_name_without_its_extra_fails_before_any_call(monkeypatch):
    without(monkeypatch, "wordllama")
    with pytest.raises(MissingExtra, match=r"answer_correctness \(the offline embedding model\) needs the "
                                           r"'offline-scorers' extra, which is not installed \(no module 'wordllama'\)"):
        ek.evaluate(model="evalkit:/extractive", data=data(), targets="ground_truth",
                    evaluators=["answer_correctness"], progress=False)
    assert ek.search_runs().empty


def test_a_postgresql_store_without_its_driver_names_the_extra(monkeypatch):
    without(monkeypatch, "psycopg")
    with pytest.raises(MissingExtra, match=r"'postgres' extra"):
        ek.TrackingClient("postgresql://user@127.0.0.1:1/nothing")
