"""Where evalkit finds what other packages plug into it: one entry-point group per kind of plugin.

- ``evalkit.evaluators``: an evaluator factory per name (``exact_match = "pkg.mod:ExactMatch"``);
- ``evalkit.evaluator_families``: a factory for evaluators named ``<family>:<metric>``
  (``ragas:faithfulness``), called with ``metric=`` and the evaluator's config;
- ``evalkit.reports``: the HTML report renderer (``html``);
- ``evalkit.model_providers``: a ChatModel factory per model URI scheme;
- ``evalkit.executors``: where evaluate() answers rows (``local``, ``ray``), an Executor factory per name.
- ``evalkit.model_flavors``: a model bundle flavor per name (``llm = "evalkit.models.flavors.llm:LLMFlavor"``).
- ``evalkit.tracking_stores``: a TrackingStore class per tracking URI scheme (``evalkit.tracking.schemes``);
- ``evalkit.artifact_repositories``: an ArtifactRepository class per artifact URI scheme.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from importlib.metadata import EntryPoint, EntryPoints, entry_points

from evalkit.errors import MissingExtra

EVALUATORS = "evalkit.evaluators"
EVALUATOR_FAMILIES = "evalkit.evaluator_families"
REPORTS = "evalkit.reports"
MODEL_PROVIDERS = "evalkit.model_providers"
EXECUTORS = "evalkit.executors"
MODEL_FLAVORS = "evalkit.model_flavors"
TRACKING_STORES = "evalkit.tracking_stores"
ARTIFACT_REPOSITORIES = "evalkit.artifact_repositories"
GROUPS = (EVALUATORS, EVALUATOR_FAMILIES, REPORTS, MODEL_PROVIDERS, EXECUTORS, MODEL_FLAVORS, TRACKING_STORES,
          ARTIFACT_REPOSITORIES)


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` naming ``extra`` unless ``module`` can be imported. Nothing is
    imported: plugins call this when they are configured, so a missing package is reported
    before any model call, not in the middle of scoring."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(what, extra, module)


def find_plugins(group: str) -> dict[str, EntryPoint]:
    """The entry points installed under ``group`` (one of ``GROUPS``), by name. Nothing is
    imported until the caller loads one."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; evalkit reads {', '.join(GROUPS)}")
    return {ep.name: ep for ep in _installed(tuple(sys.path)).select(group=group)}


@functools.lru_cache(maxsize=1)
def _installed(path: tuple[str, ...]) -> EntryPoints:
    """Every entry point installed on ``path``: reading each distribution's metadata costs 10-20 ms
    a time, and an evaluation looks up five groups. Read again when ``sys.path`` changes; a
    package installed later into a folder already on it is seen by a new process."""
    return entry_points()
