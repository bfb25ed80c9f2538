"""evalkit: evaluate LLM and RAG models, and track every run.

``import evalkit as ek`` gives the fluent tracking API (``ek.start_run``, ``ek.log_metric``,
``ek.search_runs``...), and ``ek.TrackingClient`` for working with explicit ids.
"""

from evalkit import scoring
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
    FilterSyntaxError,
    InvalidArgument,
    InvalidState,
    NotFound,
    StoreUnavailable,
)
from evalkit.evaluation import EvaluationResult, EvaluationWarning, evaluate
from evalkit.models.callables import batch
from evalkit.scoring import EvalRow, Score, evaluator
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
    "ActiveRun", "AlreadyExists", "EvalRow", "EvaluationFailed", "EvaluationResult", "EvaluationWarning", "Score", "batch", "evaluate", "evaluator", "scoring", "EvalkitError", "Experiment", "FileInfo", "FilterSyntaxError",
    "InvalidArgument", "InvalidState", "LifecycleStage", "Metric", "NotFound", "Param", "Run", "RunData",
    "RunInfo", "RunStatus", "RunTag", "StoreUnavailable", "TrackingClient", "ViewType", "__version__",
    "active_run", "create_experiment", "delete_experiment", "delete_run", "end_run", "flush",
    "get_experiment", "get_experiment_by_name", "get_metric_history", "get_run", "get_tracking_uri",
    "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_metric", "log_metrics", "log_param",
    "log_params", "log_table", "log_text", "restore_run", "search_experiments", "search_runs",
    "set_experiment", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]
