"""Promotion with evidence: run a suite against one registered version and move it to a stage
(or point an alias at it) only when every gate passed, naming the suite run as the evidence."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from evalkit.entities import ModelVersion, Stage
from evalkit.errors import InvalidArgument
from evalkit.suite.config import ModelSpec, Suite, load_suite
from evalkit.suite.gates import PASSED
from evalkit.suite.job import SuiteResult, run_suite
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.registry import parse_stage, validate_alias


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did: the suite's result, and the version after the move (None if refused)."""

    suite: SuiteResult
    target: str
    version: ModelVersion | None

    @property
    def promoted(self) -> bool:
        return self.version is not None


def parse_target(target: str) -> str:
    """``@alias`` or a canonical stage name."""
    if isinstance(target, str) and target.startswith("@"):
        return "@" + validate_alias(target[1:])
    return parse_stage(target).value


def suite_for_version(suite: Suite, model_uri: str, suite_model: str | None = None) -> Suite:
    """``suite`` with the model under test replaced by ``model_uri``: the model named
    ``suite_model``, or the suite's only model. The name is kept, so its baseline (the last
    passing run of that model) is what the version is compared with."""
    models = suite.spec.models
    names = [m.name for m in models]
    if suite_model is not None:
        if suite_model not in names:
            raise InvalidArgument(f"suite {suite.name!r} has no model named {suite_model!r} (its models: "
                                  f"{', '.join(names)})")
        replaced = suite_model
    elif len(models) == 1:
        replaced = names[0]
    else:
        raise InvalidArgument(f"suite {suite.name!r} evaluates several models ({', '.join(names)}): name the one the "
                              "version takes the place of (--suite-model NAME)")
    new_models = [ModelSpec(name=m.name, uri=model_uri) if m.name == replaced else m for m in models]
    return dataclasses.replace(suite, spec=suite.spec.model_copy(update={"models": new_models}))


def promote(name: str, version: int | str, target: str, suite_file: str | Path, out_dir: str | Path = "evalkit-out",
            suite_model: str | None = None, archive_existing_versions: bool = True,
            progress: bool | None = None) -> Promotion:
    """Run ``suite_file`` against version ``version`` of ``name`` and, when every gate passes,
    move it to ``target`` (a stage, or ``@alias``) with the suite run as evidence. Otherwise
    nothing moves. Bad names, versions and targets fail before the suite runs."""
    client = TrackingClient()
    canonical = parse_target(target)
    found = client.get_model_version(name, version)
    suite = suite_for_version(load_suite(suite_file), f"models:/{found.name}/{found.version}", suite_model)
    result = run_suite(suite, out_dir, progress=progress)
    if result.status != PASSED:
        return Promotion(result, canonical, None)
    if canonical.startswith("@"):
        client.set_registered_model_alias(name, canonical[1:], found.version, evidence_run_id=result.run_id)
        moved = client.get_model_version(name, found.version)
    else:
        archive = archive_existing_versions and canonical in (Stage.STAGING.value, Stage.PRODUCTION.value)
        moved = client.transition_model_version_stage(name, found.version, canonical, archive,
                                                      evidence_run_id=result.run_id)
    return Promotion(result, canonical, moved)
