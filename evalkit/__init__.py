"""evalkit: evaluate LLM and RAG models, and track every run.

``import evalkit as ek`` gives the fluent tracking API (``ek.start_run``, ``ek.log_metric``,
``ek.search_runs``...), and ``ek.TrackingClient`` for working with explicit ids.
"""

from typing import TYPE_CHECKING, Any

# Records and errors are cheap and always there; everything else (pandas, SQLAlchemy, the
# evaluation engine) loads on first use, so `import evalkit` and `evalkit --help` stay fast.
from evalkit.entities import (
    Experiment,
    FileInfo,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from evalkit.errors import (
    AlreadyExists,
    EvalkitError,
    EvaluationFailed,
    EvaluationWarning,
    FilterSyntaxError,
    InvalidArgument,
    InvalidState,
    MissingExtra,
    NotFound,
    StoreUnavailable,
)

_FLUENT = (
    "ActiveRun", "active_run", "create_experiment", "delete_experiment", "delete_run", "end_run", "flush",
    "get_experiment", "get_experiment_by_name", "get_metric_history", "get_run", "log_artifact", "log_artifacts",
    "log_dict", "log_figure", "log_metric", "log_metrics", "log_param", "log_params", "log_table", "log_text",
    "restore_run", "search_experiments", "search_runs", "set_experiment", "set_tag", "set_tags", "start_run",
)
# Public name -> the module that defines it, imported when the name is first read.
_LAZY: dict[str, str] = {
    **{name: "evalkit.tracking.fluent" for name in _FLUENT},
    "EvaluationResult": "evalkit.evaluation.engine",
    "evaluate": "evalkit.evaluation.engine",
    "batch": "evalkit.inference.providers.callables",
    "EvalRow": "evalkit.evaluation.scoring",
    "Score": "evalkit.evaluation.scoring",
    "evaluator": "evalkit.evaluation.scoring",
    "TrackingClient": "evalkit.tracking.client",
    "ModelInfo": "evalkit.models.api",
    "log_model": "evalkit.models.api",
    "load_model": "evalkit.models.api",
    "register_model": "evalkit.models.api",
    "get_tracking_uri": "evalkit.tracking.stores",
    "set_tracking_uri": "evalkit.tracking.stores",
}
# Submodules reachable as attributes (``ek.scoring.Score``), by their full module name.
_SUBMODULES = {
    "scoring": "evalkit.evaluation.scoring",
    "pyfunc": "evalkit.pyfunc",  # ek.pyfunc.load_model, for MLflow users
    "openai": "evalkit.autolog.openai",  # ek.openai.autolog()
    "transformers": "evalkit.autolog.transformers",  # ek.transformers.autolog()
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next read is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from evalkit import pyfunc
    from evalkit.autolog import openai, transformers
    from evalkit.evaluation import scoring
    from evalkit.evaluation.engine import EvaluationResult, evaluate
    from evalkit.evaluation.scoring import EvalRow, Score, evaluator
    from evalkit.inference.providers.callables import batch
    from evalkit.models.api import ModelInfo, load_model, log_model, register_model
    from evalkit.tracking.client import TrackingClient
    from evalkit.tracking.fluent import (
        ActiveRun,
        active_run,
        create_experiment,
        delete_experiment,
        delete_run,
        end_run,
        flush,
        get_experiment,
        get_experiment_by_name,
        get_metric_history,
        get_run,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_table,
        log_text,
        restore_run,
        search_experiments,
        search_runs,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )
    from evalkit.tracking.stores import get_tracking_uri, set_tracking_uri

__version__ = "0.1.0"

__all__ = [
    "ActiveRun", "AlreadyExists", "EvalRow", "EvaluationFailed", "EvaluationResult", "EvaluationWarning", "Score", "batch", "evaluate", "evaluator", "scoring",
    "ModelInfo", "load_model", "log_model", "pyfunc", "register_model", "EvalkitError", "Experiment", "FileInfo", "FilterSyntaxError", "openai", "transformers",
    "InvalidArgument", "InvalidState", "LifecycleStage", "Metric", "MissingExtra", "NotFound", "Param", "Run", "RunData",
    "RunInfo", "RunStatus", "RunTag", "StoreUnavailable", "TrackingClient", "ViewType", "__version__",
    "active_run", "create_experiment", "delete_experiment", "delete_run", "end_run", "flush",
    "get_experiment", "get_experiment_by_name", "get_metric_history", "get_run", "get_tracking_uri",
    "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_metric", "log_metrics",
    "log_param", "log_params", "log_table", "log_text", "restore_run", "search_experiments", "search_runs",
    "set_experiment", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]
