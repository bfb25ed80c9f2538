"""Suite files are checked whole before anything runs, and every problem names its line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.errors import InvalidArgument
from evalkit.suite import SuiteConfigError, load_suite
from evalkit.suite.config import parse_tolerance
from evalkit.suite.expressions import metric_matches, parse_threshold, resolve_metric
from evalkit.suite.preflight import preflight

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "datasets" / "rag_qa.jsonl"


def yaml_suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "nightly.yaml"
    path.write_text(body.replace("DATASET", str(DATASET)))
    return path


GOOD = """suite: nightly
datasets:
  - name: rag_qa
    path: DATASET
    targets: ground_truth
models:
  - name: extractive
    uri: evalkit:/extractive
thresholds:
  - faithfulness/mean >= 0.85
  - latency/p95 <= 2000
  - error_rate <= 2%
baseline:
  rules:
    - metric: answer_correctness/mean
    - metric: cost/total_usd
      tolerance: 10%
"""


def problems(path: Path) -> str:
    with pytest.raises(SuiteConfigError) as caught:
        preflight(load_suite(path))
    return str(caught.value)


def test_the_example_suite_and_a_good_one_load():
    suite = load_suite(ROOT / "examples" / "nightly.yaml")
    assert suite.name == "rag-nightly" and suite.spec.cache == "refresh"
    assert suite.spec.baseline.rules[3].test == "tolerance"
    preflight(suite)


def test_every_schema_problem_is_listed_with_its_line_and_key(tmp_path):
    body = GOOD.replace("    uri: evalkit:/extractive\n", "    urii: evalkit:/extractive\n")
    body = body.replace("  - latency/p95 <= 2000\n", "  - latency/p95 is at most 2000\n")
    body = body.replace("      tolerance: 10%\n", "      tolerance: ten\n")
    message = problems(yaml_suite(tmp_path, body))
    assert "nightly.yaml, line 7, models[0].uri: Field required" in message  # missing: the item's line
    assert "nightly.yaml, line 8, models[0].urii: unknown key" in message
    assert "line 11, thresholds[1]: cannot read threshold 'latency/p95 is at most 2000'" in message
    assert "line 16, baseline.rules[1]: tolerance 'ten' is not a number" in message


@pytest.mark.parametrize(("change", "expected"), [
    (("concurrency: 16\n", "concurrency: 0\n"), "line 18, concurrency: Input should be greater than or equal to 1"),
    (("  - name: extractive\n", "  - name: twin\n    uri: evalkit:/extractive\n  - name: twin\n"),
     "models names must be unique; repeated: twin"),
    (("    path: DATASET", "    path: missing.jsonl"), "line 4, datasets[0].path: no such file: missing.jsonl"),
    (("suite: nightly", "suite: night/ly"), "line 1, suite: use 1-100 letters"),
    (("      tolerance: 10%\n", "      test: tolerance\n"), "test: tolerance needs tolerance:"),
])
def test_single_problems(tmp_path, change, expected):
    body = GOOD + "concurrency: 16\n"
    assert expected in problems(yaml_suite(tmp_path, body.replace(*change)))


def test_yaml_that_does_not_parse_names_its_line(tmp_path):
    message = problems(yaml_suite(tmp_path, "suite: x\ndatasets:\n  - name: [unclosed\n"))
    assert "nightly.yaml, line 3, (top level): not valid YAML: while parsing a flow sequence" in message


@pytest.mark.parametrize(("change", "line", "words"), [
    # a key indented one space less than its siblings (a typo after editing a model block)
    (("    uri: evalkit:/extractive\n", "    uri: evalkit:/extractive\n   params: {temperature: 0}\n"), 9,
     "not valid YAML at 'params: {temperature: 0}': expected <block end>, but found '<block mapping start>' "
     "(while parsing a block collection that starts at line 7); check this line's indentation"),
    # a key indented more than its siblings: read as the continuation of the value above it
    (("    targets: ground_truth\n", "      targets: ground_truth\n"), 5,
     "not valid YAML at 'targets: ground_truth': mapping values are not allowed here; check this line's indentation"),
    # a list item pulled one space to the left, far down the file
    (("  - error_rate <= 2%\n", " - error_rate <= 2%\n"), 12, "not valid YAML at '- error_rate <= 2%'"),
    (("      tolerance: 10%\n", "    \t  tolerance: 10%\n"), 17, "YAML indents with spaces, not tabs"),
])
def test_a_mis_indented_yaml_line_is_the_line_reported(tmp_path, change, line, words):
    message = problems(yaml_suite(tmp_path, GOOD.replace(*change)))
    assert f"nightly.yaml, line {line}, (top level): " in message and words in message


def test_yaml_off_is_the_cache_mode_not_false(tmp_path):
    assert load_suite(yaml_suite(tmp_path, GOOD + "cache: off\n")).spec.cache == "off"


def test_toml_suites_name_lines_too(tmp_path):
    path = tmp_path / "nightly.toml"
    path.write_text(f'''suite = "nightly"
thresholds = [
  "faithfulness/mean >= 0.85",
  "error_rate <=",
]

[[datasets]]
name = "rag_qa"
path = "{DATASET}"

[[models]]
name = "extractive"
uri = "evalkit:/extractive"
temperature = 0
''')
    message = problems(path)
    assert "nightly.toml, line 4, thresholds[1]: cannot read threshold 'error_rate <='" in message
    assert "nightly.toml, line 14, models[0].temperature: unknown key" in message


def test_preflight_catches_what_only_the_data_and_evaluators_tell(tmp_path):
    unknown = GOOD.replace("faithfulness/mean >= 0.85", "faithfulnes/mean >= 0.85")
    message = problems(yaml_suite(tmp_path, unknown))
    assert "line 10, thresholds[0]: no metric 'faithfulnes/mean'" in message
    unpairable = GOOD.replace("    - metric: answer_correctness/mean\n", "    - metric: cost/total_usd\n      test: paired\n")
    assert "cost/total_usd has no per-row values to pair; compare it with test: tolerance" in problems(
        yaml_suite(tmp_path, unpairable))
    no_targets = GOOD.replace("    targets: ground_truth\n", "    targets: answer\n")
    assert "line 3, datasets[0]: targets column 'answer' is not in the data" in problems(yaml_suite(tmp_path, no_targets))
    bad_uri = GOOD.replace("evalkit:/extractive", "nosuch:/model")
    assert "line 8, models[0].uri:" in problems(yaml_suite(tmp_path, bad_uri))
    bad_param = GOOD.replace("    uri: evalkit:/extractive\n", "    uri: evalkit:/extractive\n    params: {temperature: 9}\n")
    assert "line 9, models[0].params:" in problems(yaml_suite(tmp_path, bad_param))
    judged = GOOD.replace("evaluators", "x").replace("thresholds:\n", "evaluators: [exact_match]\nthresholds:\n")
    assert "no metric 'faithfulness/mean'" in problems(yaml_suite(tmp_path, judged))


def test_threshold_expressions():
    assert parse_threshold("error_rate <= 2%").value == pytest.approx(0.02)
    gate = parse_threshold(" latency/p95_ms < 1.5e3 ")
    assert (gate.metric, gate.op, gate.value) == ("latency/p95_ms", "<", 1500.0)
    assert gate.holds(1499) and not gate.holds(1500) and not gate.higher_is_better
    for bad in ("faithfulness >= high", ">= 0.5", "a = 1", "a >= 1 b", 0.5):
        with pytest.raises(InvalidArgument):
            parse_threshold(bad)


def test_short_metric_names_resolve_to_the_run_metric():
    logged = ["faithfulness/judge-v1/mean", "faithfulness/judge-v1/rows_failed", "latency/p95_ms", "error_rate",
              "cost/per_query_usd", "exact_match/v1/mean"]
    assert resolve_metric("faithfulness/mean", logged) == "faithfulness/judge-v1/mean"
    assert resolve_metric("faithfulness/v1/mean", logged) == "faithfulness/judge-v1/mean"
    assert resolve_metric("latency/p95", logged) == "latency/p95_ms"
    assert resolve_metric("exact_match/mean", logged) == "exact_match/v1/mean"
    assert not metric_matches("faithfulness/v2/mean", "faithfulness/judge-v1/mean")
    with pytest.raises(InvalidArgument, match="metrics of faithfulness: faithfulness/judge-v1/mean"):
        resolve_metric("faithfulness/median", logged)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        resolve_metric("faithfulness/mean", ["faithfulness/judge-v1/mean", "faithfulness/kprecision-v1/mean"])


def test_tolerances():
    assert parse_tolerance("10%") == (pytest.approx(0.1), True)
    assert parse_tolerance(0.02) == (0.02, False)
    with pytest.raises(ValueError, match="must not be negative"):
        parse_tolerance("-1%")


def test_secrets_are_refused_before_anything_is_logged(tmp_path):
    keyed = GOOD.replace("    uri: evalkit:/extractive\n", "    uri: evalkit:/extractive\n    params: {api_key: sk-abc}\n")
    message = problems(yaml_suite(tmp_path, keyed))
    assert "line 9, models[0].params.api_key: secrets do not belong in a suite file" in message
    assert "sk-abc" not in message
    pasted = GOOD.replace("suite: nightly\n", "suite: nightly\ndescription: sk-proj-0123456789abcdefghij\n")
    message = problems(yaml_suite(tmp_path, pasted))
    assert "line 2, description: secrets do not belong" in message and "0123456789" not in message
