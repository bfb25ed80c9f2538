"""The tags a suite run writes, which baseline resolution and history read back."""

SUITE = "evalkit.suite"
ROLE = "evalkit.suite.role"  # "parent" on the suite run, "pair" on each (dataset, model) child
STATUS = "evalkit.suite.status"  # passed, failed or error (the parent's covers the whole job)
DATASET = "evalkit.suite.dataset"
MODEL = "evalkit.suite.model"
GIT_COMMIT = "evalkit.git_commit"
DATASET_DIGEST = "evalkit.dataset_digest"
MODEL_SNAPSHOT = "evalkit.model_snapshot"
BASELINE = "evalkit.suite.baseline_run_id"
SUITE_DIGEST = "evalkit.suite.file_digest"

GATES_FILE = "gates.json"  # each pair's gate results, an artifact of its child run
