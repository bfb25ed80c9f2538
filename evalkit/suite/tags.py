"""The tags a suite run writes, which baseline resolution and history read back.

The role and status tags are also read by the registry's evidence check, so they are defined in
``evalkit.tracking.suite_tags`` (the store does not import the suite) and re-exported here.
"""

from evalkit.tracking.suite_tags import PAIR, PARENT, ROLE, STATUS  # noqa: F401 - re-exported

SUITE = "evalkit.suite"
DATASET = "evalkit.suite.dataset"
MODEL = "evalkit.suite.model"
GIT_COMMIT = "evalkit.git_commit"
DATASET_DIGEST = "evalkit.dataset_digest"
MODEL_SNAPSHOT = "evalkit.model_snapshot"
BASELINE = "evalkit.suite.baseline_run_id"
SUITE_DIGEST = "evalkit.suite.file_digest"

GATES_FILE = "gates.json"  # each pair's gate results, an artifact of its child run
