"""The rows of MLflow's tables that a batch of finished child runs becomes, as `create_run`,
``log_batch`` and ``set_terminated`` write them. Needs no MLflow.

One rule for every bulk writer: the driver's (`sweeps.tracking.bulk`, through MLflow's store
session) and a Ray worker's (`sweeps.tracking.pack_writer`, through psycopg2 alone: a worker
never imports MLflow, ~200 MB and seconds per process). MLflow's own values that the rows
depend on are mirrored here (`MLFLOW_RULES`); `tests/tracking/test_pack_writer.py` checks them
against the installed MLflow, and `tests/tracking/test_contract.py` compares the rows each
writer stores with the client's, field by field.
"""

from __future__ import annotations

import math
from typing import Sequence

from sweeps.tracking.child import ChildRun

# mlflow.utils.validation, mlflow.entities and mlflow.utils.mlflow_tags (MLflow 3.17.2).
MAX_PARAM_VAL_LENGTH = 6000           # log_batch truncates longer param values
MAX_TAG_VAL_LENGTH = 8000             # ... and tag values
RUN_NAME_TAG = "mlflow.runName"
SOURCE_UNKNOWN = "UNKNOWN"            # SourceType.UNKNOWN, MlflowClient's default
FINISHED = "FINISHED"                 # RunStatus.FINISHED
ACTIVE = "active"                     # LifecycleStage.ACTIVE
FLOAT_MAX = 1.7976931348623157e308    # what the SQL store writes for +-inf
MLFLOW_RULES = dict(MAX_PARAM_VAL_LENGTH=MAX_PARAM_VAL_LENGTH,
                    MAX_TAG_VAL_LENGTH=MAX_TAG_VAL_LENGTH, RUN_NAME_TAG=RUN_NAME_TAG,
                    SOURCE_UNKNOWN=SOURCE_UNKNOWN, FINISHED=FINISHED, ACTIVE=ACTIVE)

# Each table's columns, in the order the row dicts are built (COPY names them).
COLUMNS = {
    "runs": ("run_uuid", "name", "artifact_uri", "experiment_id", "source_type", "source_name",
             "entry_point_name", "user_id", "status", "start_time", "end_time", "deleted_time",
             "source_version", "lifecycle_stage"),
    "tags": ("run_uuid", "key", "value"),
    "params": ("run_uuid", "key", "value"),
    "metrics": ("run_uuid", "key", "value", "timestamp", "step", "is_nan"),
    "latest_metrics": ("run_uuid", "key", "value", "timestamp", "step", "is_nan"),
}


def sanitize_metric_value(value: float) -> tuple[bool, float]:
    """(is_nan, stored value) as MLflow's SQL store writes a metric: NaN as 0 with is_nan,
    +-inf as +-FLOAT_MAX."""
    if math.isnan(value):
        return True, 0
    if math.isinf(value):
        return False, FLOAT_MAX if value > 0 else -FLOAT_MAX
    return False, value


def batch_rows(experiment_id: str, children: Sequence[ChildRun], run_ids: Sequence[str],
               artifact_uris: Sequence[str], start_time: int, metric_time: int,
               end_time: int) -> dict[str, list[dict]]:
    """{table: row dicts (keys `COLUMNS[table]`)} of the runs, finished."""
    rows: dict[str, list[dict]] = {table: [] for table in COLUMNS}
    for child, run_id, artifact_uri in zip(children, run_ids, artifact_uris):
        rows["runs"].append(dict(
            run_uuid=run_id, name=child.name, artifact_uri=artifact_uri,
            experiment_id=int(experiment_id), source_type=SOURCE_UNKNOWN, source_name="",
            entry_point_name="", user_id="unknown",                   # MlflowClient's defaults
            status=FINISHED, start_time=start_time, end_time=end_time, deleted_time=None,
            source_version="", lifecycle_stage=ACTIVE))
        for key, value in {**child.tags, RUN_NAME_TAG: child.name}.items():
            rows["tags"].append(dict(run_uuid=run_id, key=key,
                                     value=value[:MAX_TAG_VAL_LENGTH]))
        for key, value in child.params.items():                 # truncated as log_batch does
            rows["params"].append(dict(run_uuid=run_id, key=key,
                                       value=value[:MAX_PARAM_VAL_LENGTH]))
        latest: dict[str, dict] = {}
        seen: set[tuple] = set()
        for key, value, step in child.points:
            is_nan, stored = ((False, value) if math.isfinite(value)      # (most points)
                              else sanitize_metric_value(value))
            if (key, stored, step, is_nan) in seen:            # log_batch keeps one of repeats
                continue
            seen.add((key, stored, step, is_nan))
            row = dict(run_uuid=run_id, key=key, value=stored, timestamp=metric_time,
                       step=step, is_nan=is_nan)
            rows["metrics"].append(row)
            old = latest.get(key)
            # The store's rule: a point replaces the latest if (step, timestamp, value) is larger.
            if old is None or (step, metric_time, stored) > (old["step"], old["timestamp"],
                                                             old["value"]):
                latest[key] = row
        rows["latest_metrics"].extend(dict(row) for row in latest.values())   # rows of their own
    return rows
