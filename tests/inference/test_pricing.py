from __future__ import annotations

import json

import pytest

from evalkit.errors import InvalidArgument
from evalkit.inference.pricing import Price, PriceTable, bare_model_name
from evalkit.inference.providers.base import Usage


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_shipped_table_is_dated(table):
    assert table.version == "2025-08-07"
    price = table.lookup("gpt-4o")
    assert price == Price("gpt-4o", 2.50, 10.00, 1.25, "2025-08-07", "openai.com/api/pricing")
    assert table.lookup("evalkit-extractive").input == 0


def test_exact_lookup(table):
    assert table.lookup("gpt-4o-mini").model == "gpt-4o-mini"
    assert table.lookup("gpt-5-nano").cached_input == 0.005
    assert table.lookup("text-embedding-3-large").input == 0.13


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("o4-mini-2025-04-16", "o4-mini"),
    ],
)
def test_snapshot_takes_longest_prefix(table, model, expected):
    assert table.lookup(model).model == expected


@pytest.mark.parametrize("model", ["gpt-4ox", "o3x", "gpt-5nano", "gpt", "claude-3-5-sonnet", "ft:gpt-4o:org::abc"])
def test_unknown_model_is_none(table, model):
    assert table.lookup(model) is None
    assert table.cost(Usage(10, 10), model) is None


@pytest.mark.parametrize("model", ["openai:/gpt-4o-mini", "openai://gpt-4o-mini", "openai/gpt-4o-mini-2024-07-18"])
def test_provider_prefix_is_ignored(table, model):
    assert table.lookup(model).model == "gpt-4o-mini"


def test_bare_model_name():
    assert bare_model_name("openai:/gpt-4o") == "gpt-4o"
    assert bare_model_name("gpt-4o") == "gpt-4o"
    assert bare_model_name("ft:gpt-4o:org::abc") == "ft:gpt-4o:org::abc"


def test_cost_bills_cached_input_at_cached_price(table):
    # gpt-4o: 800 uncached * 2.50 + 200 cached * 1.25 + 500 output * 10.00 = 7250 per 1M
    assert table.cost(Usage(1000, 500, cached_input_tokens=200), "gpt-4o") == pytest.approx(0.00725)
    # gpt-5-mini: 1M * 0.25 + 1M * 0.025 + 1M * 2.00
    assert table.cost(Usage(2_000_000, 1_000_000, 1_000_000), "gpt-5-mini-2025-08-07") == pytest.approx(2.275)
    # gpt-4o-mini, nothing cached: 1000 * 0.15 + 2000 * 0.60 = 1350 per 1M
    assert table.cost(Usage(1000, 2000), "gpt-4o-mini") == pytest.approx(0.00135)


def test_cost_of_embeddings_and_offline(table):
    assert table.cost(Usage(1_000_000, 0), "text-embedding-3-small") == pytest.approx(0.02)
    assert table.cost(Usage(123, 456), "evalkit-extractive") == 0.0


def test_cached_tokens_above_input_are_capped(table):
    assert table.cost(Usage(100, 0, cached_input_tokens=500), "gpt-4o") == pytest.approx(100 * 1.25 / 1e6)


def test_dict_overrides_replace_entries():
    table = PriceTable.load(
        {
            "gpt-4o": {"input": 2.0, "output": 8.0, "cached_input": 1.0},
            "my-model": {"input": 1, "output": 3},
            "o3": Price("ignored", 1.0, 4.0, 0.25, "2025-09-01"),
        }
    )
    assert table.version == "2025-08-07+overrides"
    assert table.lookup("gpt-4o-2024-08-06") == Price("gpt-4o", 2.0, 8.0, 1.0, "override")
    # No cached price given: no discount assumed.
    assert table.lookup("my-model").cached_input == 1.0
    assert table.lookup("o3") == Price("o3", 1.0, 4.0, 0.25, "2025-09-01")
    assert table.lookup("gpt-4o-mini").input == 0.15
    # The shipped table is untouched.
    assert PriceTable.load().lookup("gpt-4o").input == 2.50


def test_file_overrides(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "version": "2025-10-01",
                "currency": "USD",
                "unit": "per 1M tokens",
                "models": {
                    "gpt-4o-mini": {"input": 0.1, "output": 0.5, "cached_input": 0.05, "checked": "2025-10-01"},
                    "local-llama": {"input": 0, "output": 0},
                },
            }
        )
    )
    table = PriceTable.load(path)
    assert table.lookup("gpt-4o-mini-2024-07-18") == Price("gpt-4o-mini", 0.1, 0.5, 0.05, "2025-10-01")
    assert table.cost(Usage(10, 10), "local-llama") == 0.0
    assert PriceTable.load(str(path)).lookup("local-llama") is not None


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"input": -1, "output": 1}, "input"),
        ({"input": 1, "output": "2.5"}, "output"),
        ({"input": 1, "output": 1, "cached_input": True}, "cached_input"),
        ({"input": 1, "output": float("nan")}, "output"),
        ({"input": 1, "output": 1, "cache_input": 0.5}, "cache_input"),
        ({"output": 1}, "input"),
    ],
)
def test_invalid_override_names_model_and_field(entry, field):
    with pytest.raises(InvalidArgument) as info:
        PriceTable.load({"my-model": entry})
    assert "'my-model'" in str(info.value)
    assert f"'{field}'" in str(info.value)


def test_invalid_file_override_names_model_and_field(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"gpt-4o": {"input": 1, "output": -2}}}))
    with pytest.raises(InvalidArgument, match=r"'gpt-4o' field 'output'"):
        PriceTable.load(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"gpt-4o": {"input": 1, "output": 1}}', "'models'"),
        ('{"currency": "EUR", "models": {}}', "currency"),
    ],
)
def test_bad_price_file(tmp_path, content, match):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=match):
        PriceTable.load(path)


def test_missing_price_file(tmp_path):
    with pytest.raises(InvalidArgument, match="cannot read"):
        PriceTable.load(tmp_path / "nope.json")
