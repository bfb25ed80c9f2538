"""Suite files for the nightly job's tests (tests/suite/) and the server's (tests/server/): the
bundled dataset and an offline suite whose thresholds the embedded model passes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "datasets" / "rag_qa.jsonl"


def write_suite(folder: Path, body: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(f"suite: nightly-test\ndatasets:\n  - name: rag_qa\n    path: {DATASET}\n    targets: ground_truth\n"
                    f"    limit: 40\n{body}")
    return path


OFFLINE = """models:
  - name: extractive
    uri: evalkit:/extractive
cache: off
thresholds:
  - faithfulness/mean >= 0.85
  - error_rate <= 2%
baseline:
  rules:
    - metric: answer_correctness/mean
"""
