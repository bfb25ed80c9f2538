"""The public surface: ``import evalkit as ek`` exports exactly these names, each resolves, and the
import itself is cheap (the data stack, the SQL stack and the model clients load on first use)."""

from __future__ import annotations

import subprocess
import sys

import evalkit as ek

EXPORTED = [
    "ActiveRun", "AlreadyExists", "EvalRow", "EvalkitError", "EvaluationFailed", "EvaluationResult",
    "EvaluationWarning", "Experiment", "FileInfo", "FilterSyntaxError", "InvalidArgument", "InvalidState",
    "LifecycleStage", "Metric", "MissingExtra", "NotFound", "Param", "Run", "RunData", "RunInfo", "RunStatus",
    "RunTag", "Score", "StoreUnavailable", "TrackingClient", "ViewType", "__version__", "active_run", "batch",
    "create_experiment", "delete_experiment", "delete_run", "end_run", "evaluate", "evaluator", "flush",
    "get_experiment", "get_experiment_by_name", "get_metric_history", "get_run", "get_tracking_uri",
    "load_model", "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_metric", "log_metrics",
    "log_model", "log_param", "log_params", "log_table", "log_text", "openai", "restore_run", "scoring", "search_experiments", "search_runs",
    "set_experiment", "set_tag", "set_tags", "set_tracking_uri", "start_run", "transformers",
    "ModelInfo", "pyfunc", "register_model",
]


def test_the_exported_names_are_pinned_and_all_resolve():
    assert sorted(ek.__all__) == sorted(EXPORTED)
    for name in EXPORTED:
        assert getattr(ek, name) is not None, name
    assert set(EXPORTED) <= set(dir(ek))
    assert ek.start_run.__module__ == "evalkit.tracking.fluent" and ek.Score.__module__ == "evalkit.evaluation.scoring"


def test_an_unknown_name_is_an_attribute_error():
    try:
        ek.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("ek.no_such_thing resolved")


def test_import_evalkit_and_the_cli_help_load_no_heavy_stack():
    heavy = ("pandas", "sqlalchemy", "openai", "pyarrow", "alembic", "jinja2")
    for code in ("import evalkit", "from evalkit.cli.main import cli"):
        probe = f"import sys; {code}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        assert loaded.strip() == "", (code, loaded)
