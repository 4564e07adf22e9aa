"""Units of the MLflow layer: param strings and their kinds, metric decoding, batching,
which errors are retried."""

from __future__ import annotations

import math

import pytest

from sweeps.tracking import contract, store, track

@pytest.mark.parametrize("values, kind", [
    ([0.1, 1.0, 1e-8], "float"), ([1, 0.5], "float"), ([0, 3], "int"), ([None, 32], "Int64"),
    ([True, False], "bool"), (["relu", "tanh"], "str"), ([(4,), (8, 8)], "tuple"),
    ([None, "a"], "json"), ([1, "a"], "json"),
])
def test_swept_values_round_trip_through_param_strings(values, kind):
    assert contract.value_kind(values) == kind
    decoded = [contract.decode_param(contract.encode_param(v), kind) for v in values]
    expected = [float(v) if kind == "float" else v for v in values]
    assert decoded == expected
    assert [type(v) for v in decoded] == [type(v) for v in expected]


def test_params_are_readable_strings():
    assert contract.encode_param((8, 8)) == "[8, 8]"
    assert contract.encode_param(0.1) == "0.1"
    assert contract.encode_param(False) == "false"
    assert contract.encode_param(None) == "null"
    assert contract.encode_param("xavier_normal") == "xavier_normal"


def test_infinite_metrics_clamped_by_sql_stores_read_back_as_inf():
    assert contract.decode_metric(1.7976931348623157e308) == math.inf
    assert contract.decode_metric(-1.7976931348623157e308) == -math.inf
    assert math.isnan(contract.decode_metric(math.nan))
    assert contract.decode_metric(0.25) == 0.25


def test_batches_stay_within_mlflow_limits_and_keep_every_entity():
    metrics, params = list(range(2500)), [f"p{i}" for i in range(150)]
    batches = track._batches(metrics, params)
    for m, p in batches:
        assert len(m) <= 1000 and len(p) <= 100 and len(m) + len(p) <= 1000
    assert [x for m, _ in batches for x in m] == metrics
    assert [x for _, p in batches for x in p] == params
    assert track._batches(list(range(300)), params[:26]) == [(list(range(300)), params[:26])]


def test_transient_errors_are_told_apart_from_bugs():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    assert store.is_transient(ConnectionError("refused"))
    assert store.is_transient(MlflowException(
        "API request to http://x/api/2.0/mlflow/runs/create failed with exception "
        "HTTPConnectionPool(host='x', port=5000): Max retries exceeded"))
    assert store.is_transient(MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE))
    assert not store.is_transient(ValueError("bad value"))
    assert not store.is_transient(MlflowException("Run x not found",
                                                  error_code=RESOURCE_DOES_NOT_EXIST))


def test_every_tracker_class_offers_every_method_of_the_tracker_seam():
    from sweeps.tracking.bulk import BulkTracker
    from sweeps.tracking.tracker import Tracker

    members = [name for name in vars(Tracker) if not name.startswith("_")]
    assert {"with_retries", "keep_finished_children", "adopt_written", "store",
            "log_children"} <= set(members)
    for tracker_class in (track.SweepTracker, BulkTracker):
        missing = [name for name in members if not hasattr(tracker_class, name)]
        assert not missing, f"{tracker_class.__name__} lacks {missing}"
        assert tracker_class.bulk is False      # (until a BulkTracker starts on its store)
