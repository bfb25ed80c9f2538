"""Entities have one JSON form that survives json.dumps exactly, NaN and infinities included;
every error class carries a code and an HTTP status, and comes back from its code."""

from __future__ import annotations

import json
import math

import pytest

import evalkit as ek
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
)
from evalkit.errors import PermissionDenied, Unauthenticated, error_from_code


def roundtrip(entity):  # noqa: ANN001, ANN201
    text = json.dumps(entity.to_dict(), allow_nan=False)  # strict JSON: no bare NaN on the wire
    return type(entity).from_dict(json.loads(text))


@pytest.mark.parametrize("value", [0.5, -3.0, 1e308, math.inf, -math.inf, 0.0])
def test_metric_values_round_trip_exactly(value):
    assert roundtrip(Metric("loss", value, 1_700_000_000_000, 7)) == Metric("loss", value, 1_700_000_000_000, 7)


def test_nan_round_trips_as_nan():
    back = roundtrip(Metric("loss", math.nan, 1, 0))
    assert math.isnan(back.value) and back.key == "loss"


def test_a_run_from_the_store_round_trips():
    with ek.start_run(run_name="wire", tags={"team": "rag"}) as active:
        ek.log_params({"lr": "2e-5"})
        ek.log_metrics({"loss": math.nan, "grad": math.inf, "acc": 0.91})
    run = ek.get_run(active.info.run_id)
    back = roundtrip(run)
    assert back.info == run.info and back.data.params == run.data.params and back.data.tags == run.data.tags
    assert math.isnan(back.data.metrics["loss"]) and back.data.metrics["grad"] == math.inf
    assert back.data.metrics["acc"] == 0.91


def test_other_entities_round_trip():
    experiment = Experiment("3", "rag", "/a/3", LifecycleStage.DELETED, 1, 2, {"k": "v"})
    info = RunInfo("abc", "3", "n", RunStatus.KILLED, 5, None, "s3://b/3/abc/artifacts", LifecycleStage.ACTIVE)
    for entity in (experiment, info, Param("a", "b"), RunTag("c", "d"), FileInfo("x/y.json", False, 12),
                   FileInfo("x", True, None), Run(info, RunData())):
        assert roundtrip(entity) == entity


@pytest.mark.parametrize("cls, status", [(ek.InvalidArgument, 400), (ek.FilterSyntaxError, 400), (ek.NotFound, 404),
                                         (ek.AlreadyExists, 409), (ek.InvalidState, 409),
                                         (ek.StoreUnavailable, 503), (Unauthenticated, 401),
                                         (PermissionDenied, 403), (ek.EvalkitError, 500)])
def test_errors_map_to_http_statuses_and_back(cls, status):
    assert cls.http_status == status
    again = error_from_code(cls.code, "message")
    assert isinstance(again, cls if cls is not ek.FilterSyntaxError else ek.InvalidArgument)
    assert str(again) == "message"
