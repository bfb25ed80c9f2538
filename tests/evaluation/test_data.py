from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import InvalidArgument
from evalkit.evaluation.data import EvalDataset, load_dataset


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": ["How bright is the Fenn?", "How tall is the Orla?", "Who founded Marrowby?"],
            "contexts": [
                ["The Fenn is rated at 800 lumens.", "The Orla is 168 cm tall."],
                ["The Orla is 168 cm tall."],
                [],
            ],
            "ground_truth": ["800 lumens", "168 cm", "I don't know."],
            "notes": ["a", "b", "c"],
        }
    )


def _csv(df: pd.DataFrame, path: Path) -> Path:
    # CSV has no lists: contexts are stored JSON-encoded, as most tools write them.
    df.assign(contexts=[json.dumps(c) for c in df["contexts"]]).to_csv(path, index=False)
    return path


def _jsonl(df: pd.DataFrame, path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict(orient="records")), encoding="utf-8")
    return path


# --- sources -------------------------------------------------------------------------------


def test_dataframe_resolves_conventional_columns(frame):
    ds = load_dataset(frame)
    assert isinstance(ds, EvalDataset)
    assert (ds.input_column, ds.context_column, ds.target_column, ds.prediction_column) == (
        "question", "contexts", "ground_truth", None,
    )
    assert ds.num_rows == 3
    assert ds.inputs() == frame["question"].tolist()
    assert ds.contexts() == [
        ["The Fenn is rated at 800 lumens.", "The Orla is 168 cm tall."],
        ["The Orla is 168 cm tall."],
        [],
    ]
    assert ds.targets() == ["800 lumens", "168 cm", "I don't know."]
    assert ds.predictions() == [None, None, None]
    assert list(ds.frame.columns) == list(frame.columns)  # unused columns kept for prompts


def test_dataframe_is_copied_and_index_reset(frame):
    frame.index = [10, 20, 30]
    ds = load_dataset(frame)
    assert list(ds.frame.index) == [0, 1, 2]
    assert list(frame.index) == [10, 20, 30]
    ds.frame.loc[0, "question"] = "changed"
    assert frame.loc[10, "question"] == "How bright is the Fenn?"


def test_hugging_face_dataset(frame):
    datasets = pytest.importorskip("datasets")
    ds = load_dataset(datasets.Dataset.from_pandas(frame))
    assert ds.contexts() == load_dataset(frame).contexts()
    assert ds.digest == load_dataset(frame).digest


def test_hugging_face_dataset_dict_names_the_splits(frame):
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict({"test": datasets.Dataset.from_pandas(frame)})
    with pytest.raises(InvalidArgument, match=r"DatasetDict.*'test'"):
        load_dataset(splits)


def test_csv_with_json_encoded_contexts(frame, tmp_path):
    ds = load_dataset(_csv(frame, tmp_path / "eval.csv"))
    assert ds.contexts() == load_dataset(frame).contexts()
    assert ds.digest == load_dataset(frame).digest


def test_csv_cells_are_text(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text('question,ground_truth\n"Agent number?",007\n"Missing?",None\n', encoding="utf-8")
    assert load_dataset(path).targets() == ["007", "None"]


@pytest.mark.parametrize("name", ["eval.jsonl", "eval.ndjson", "eval.JSONL"])
def test_json_lines(frame, tmp_path, name):
    ds = load_dataset(_jsonl(frame, tmp_path / name))
    assert ds.digest == load_dataset(frame).digest


def test_json_records_and_json_lines_in_a_json_file(frame, tmp_path):
    records = tmp_path / "records.json"
    records.write_text(json.dumps(frame.to_dict(orient="records")), encoding="utf-8")
    lines = _jsonl(frame, tmp_path / "lines.json")
    assert load_dataset(records).digest == load_dataset(lines).digest == load_dataset(frame).digest


def test_parquet(frame, tmp_path):
    path = tmp_path / "eval.parquet"
    frame.to_parquet(path)
    ds = load_dataset(str(path))
    assert ds.contexts() == load_dataset(frame).contexts()
    assert ds.digest == load_dataset(frame).digest


# --- columns -------------------------------------------------------------------------------


def test_col_mapping(frame):
    renamed = frame.rename(columns={"question": "q", "contexts": "docs", "ground_truth": "gold"})
    ds = load_dataset(renamed, col_mapping={"inputs": "q", "context": "docs", "targets": "gold"})
    assert (ds.input_column, ds.context_column, ds.target_column) == ("q", "docs", "gold")
    assert ds.digest == load_dataset(frame).digest


def test_col_mapping_may_map_two_names_to_one_column(frame):
    ds = load_dataset(frame, col_mapping={"inputs": "question", "context": "question"})
    assert ds.contexts()[0] == ["How bright is the Fenn?"]


def test_col_mapping_unknown_key_lists_valid_keys(frame):
    with pytest.raises(InvalidArgument, match=r"'input'.*valid keys: 'inputs', 'context', 'targets', 'predictions'"):
        load_dataset(frame, col_mapping={"input": "question"})


def test_col_mapping_to_missing_column(frame):
    with pytest.raises(InvalidArgument, match=r"context column 'docs' is not in the data.*'question'"):
        load_dataset(frame, col_mapping={"context": "docs"})


def test_targets_argument_and_default_target_column(frame):
    with_answer = frame.drop(columns="ground_truth").assign(answer=["800 lumens", "168 cm", "?"])
    assert load_dataset(with_answer).target_column is None  # "answer" is never guessed
    assert load_dataset(with_answer, targets="answer").targets() == ["800 lumens", "168 cm", "?"]
    with pytest.raises(InvalidArgument, match=r"targets column 'gold' is not in the data.*'answer'"):
        load_dataset(with_answer, targets="gold")


def test_targets_argument_and_mapping_must_agree(frame):
    with pytest.raises(InvalidArgument, match=r"targets='ground_truth'.*col_mapping\['targets'\]='notes'"):
        load_dataset(frame, targets="ground_truth", col_mapping={"targets": "notes"})


def test_predictions_column(frame):
    ds = load_dataset(frame.assign(pred=["800", "168", "dunno"]), predictions="pred")
    assert ds.prediction_column == "pred"
    assert ds.predictions() == ["800", "168", "dunno"]
    with pytest.raises(InvalidArgument, match=r"predictions column 'output' is not in the data"):
        load_dataset(frame, predictions="output")


def test_inputs_not_required(frame):
    ds = load_dataset(frame.drop(columns="question").assign(pred="x"), predictions="pred", require_inputs=False)
    assert ds.input_column is None
    assert ds.inputs() == ["", "", ""]


@pytest.mark.parametrize("name", ["inputs", "question", "input", "query", "prompt"])
def test_input_column_conventions(name):
    assert load_dataset(pd.DataFrame({name: ["hi"]})).input_column == name


@pytest.mark.parametrize("name", ["contexts", "context", "retrieved_contexts"])
def test_context_column_conventions(name):
    assert load_dataset(pd.DataFrame({"question": ["hi"], name: ["one passage"]})).contexts() == [["one passage"]]


def test_context_cell_forms():
    cells = [
        "one passage",
        ("a", "b"),
        np.array(["a", "b"], dtype=object),
        '["a", "b"]',
        "[1] Setup guide: plug it in.",  # starts with "[" but is not JSON: one passage
        None,
        float("nan"),
        "",
    ]
    ds = load_dataset(pd.DataFrame({"question": ["q"] * len(cells), "contexts": cells}))
    assert ds.contexts() == [
        ["one passage"], ["a", "b"], ["a", "b"], ["a", "b"], ["[1] Setup guide: plug it in."], [], [], [],
    ]


# --- errors --------------------------------------------------------------------------------


def test_empty_data():
    with pytest.raises(InvalidArgument, match="data has no rows"):
        load_dataset(pd.DataFrame({"question": []}))


def test_missing_input_column_lists_columns_and_names_tried(frame):
    with pytest.raises(InvalidArgument, match=r"tried 'inputs', 'question', 'input', 'query', 'prompt'.*'notes'"):
        load_dataset(frame.drop(columns="question"))


@pytest.mark.parametrize(
    ("value", "shown"),
    [(42, "int 42"), (3.5, "float 3.5"), (["q"], "list"), (b"q", "bytes")],
)
def test_non_string_input_names_column_row_and_value(value, shown):
    df = pd.DataFrame({"question": ["fine", value]})
    with pytest.raises(InvalidArgument, match=rf"'question'.*row 1 holds {shown}"):
        load_dataset(df)


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_missing_input_is_refused(missing):
    df = pd.DataFrame({"question": ["fine", "fine", missing]}, dtype=object)
    with pytest.raises(InvalidArgument, match=r"inputs column 'question' has missing values.*row\(s\) 2"):
        load_dataset(df)


def test_empty_or_white_space_inputs_are_refused_with_their_rows(tmp_path):
    df = pd.DataFrame({"question": ["fine", "", "  \t\n", "fine", "\u00a0"], "ground_truth": ["", "a", "b", "c", "d"]})
    with pytest.raises(InvalidArgument, match=r"inputs column 'question' is empty or only white space at row\(s\) 1, 2, 4;"):
        load_dataset(df)
    csv = tmp_path / "qa.csv"
    csv.write_text("question,ground_truth\nfine,a\n   ,b\n")
    with pytest.raises(InvalidArgument, match=r"'question' is empty or only white space at row\(s\) 1;"):
        load_dataset(csv)
    # An empty target is an answer ("say nothing"), not a data bug: it stays accepted.
    assert load_dataset(df.iloc[[0, 3]], targets="ground_truth").targets() == ["", "c"]


def test_empty_inputs_stop_evaluate_before_any_model_call():
    import evalkit as ek

    calls = []
    df = pd.DataFrame({"inputs": ["What is 2 + 2?", " "]})
    with pytest.raises(InvalidArgument, match=r"row\(s\) 1"):
        ek.evaluate(model=lambda q: calls.append(q) or "4", data=df, progress=False)
    assert calls == [] and ek.search_runs().empty


def test_missing_targets_lists_first_five_rows():
    targets = [None, "ok", None, None, float("nan"), None, None, None]
    df = pd.DataFrame({"question": ["q"] * 8, "gold": targets}, dtype=object)
    with pytest.raises(InvalidArgument, match=r"targets column 'gold'.*row\(s\) 0, 2, 3, 4, 5 and 2 more"):
        load_dataset(df, targets="gold")


def test_non_string_target_is_refused():
    with pytest.raises(InvalidArgument, match=r"targets column 'ground_truth'.*row 0 holds int 7"):
        load_dataset(pd.DataFrame({"question": ["q"], "ground_truth": [7]}))


@pytest.mark.parametrize(("cell", "shown"), [({"text": "x"}, "dict"), (["ok", 3], "int 3"), (12, "int 12")])
def test_bad_context_names_row(cell, shown):
    df = pd.DataFrame({"question": ["q", "q"], "contexts": ["fine", cell]}, dtype=object)
    with pytest.raises(InvalidArgument, match=rf"context column 'contexts' row 1.*{shown}"):
        load_dataset(df)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidArgument, match=r"nope\.csv.*does not exist"):
        load_dataset(tmp_path / "nope.csv")


def test_unknown_extension_lists_supported(tmp_path):
    (tmp_path / "eval.xlsx").write_bytes(b"")
    with pytest.raises(InvalidArgument, match=r"'\.xlsx'.*supported: \.csv, \.jsonl, \.ndjson, \.json, \.parquet"):
        load_dataset(tmp_path / "eval.xlsx")


def test_unsupported_type_is_named():
    with pytest.raises(InvalidArgument, match=r"got builtins\.list"):
        load_dataset([{"question": "q"}])


def test_bad_json_line_is_located(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"question": "q"}\n{"question": \n', encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"line 2 is not valid JSON"):
        load_dataset(path)


def test_json_object_is_not_records(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text('{"question": ["q"]}', encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"JSON dict; expected a list of records"):
        load_dataset(path)


# --- digest --------------------------------------------------------------------------------


def test_digest_ignores_column_names_order_and_unused_columns(frame):
    base = load_dataset(frame).digest
    shuffled = frame[["notes", "ground_truth", "contexts", "question"]].rename(columns={"question": "query"})
    assert load_dataset(shuffled).digest == base
    assert load_dataset(frame.assign(notes="other", extra=1)).digest == base
    assert len(base) == 16 and int(base, 16) >= 0


def test_digest_changes_with_content(frame):
    base = load_dataset(frame).digest
    changed_input = frame.assign(question=["How bright is the Fenn??", *frame["question"][1:]])
    changed_context = frame.assign(contexts=[["other"], *frame["contexts"][1:]])
    changed_target = frame.assign(ground_truth=["801 lumens", *frame["ground_truth"][1:]])
    reordered = frame.iloc[[1, 0, 2]]
    no_targets = frame.drop(columns="ground_truth")
    digests = {
        load_dataset(df).digest for df in (changed_input, changed_context, changed_target, reordered, no_targets)
    }
    assert base not in digests and len(digests) == 5


def test_digest_tells_roles_apart():
    df = pd.DataFrame({"a": ["x"], "b": ["y"]})
    assert (
        load_dataset(df, col_mapping={"inputs": "a", "targets": "b"}).digest
        != load_dataset(df, col_mapping={"inputs": "b", "targets": "a"}).digest
    )


def test_digest_is_the_same_in_another_process(frame, tmp_path):
    path = _jsonl(frame, tmp_path / "eval.jsonl")
    code = f"from evalkit.evaluation.data import load_dataset; print(load_dataset({str(path)!r}).digest)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == load_dataset(frame).digest
