"""Reading a sweep's children straight from an MLflow SQL store, in a few set-based queries.

`MlflowClient` reads a sweep of N children in N/1000 ``search_runs`` pages, each rebuilding
full run entities (every tag, param and metric), and its histories in one query per metric key
and 500 runs. Here the same rows come through MLflow's own store session and table models:
one query each for the runs, their ``sweep.*`` tags, their swept params and their latest
metrics, and one for every history point, ordered so the points of one curve are contiguous.
At 4,800 children that is ~5x faster for the records and ~5x for the curves.

The rule: this module reads exactly what the client path (`sweeps.tracking.readback`) reads:
active FINISHED children of the parent, values decoded by the same `decode_record` (NaN from
``is_nan``, +-inf from the clamped float max). `tests/tracking/test_readers.py` compares
the two paths record by record.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from sweeps.tracking.layout import (CURVES, GROUP_KEY, PARENT_ID, STATUS, VARIANT_INDEX,
                                    VARIANT_KEY, decode_metrics)
from sweeps.tracking.records import History, RunRecord, decode_record

RECORD_TAGS = (VARIANT_KEY, GROUP_KEY, STATUS, VARIANT_INDEX, CURVES)


def is_sql_store(store) -> bool:
    """True for MLflow's SQLAlchemy tracking store (sqlite, postgresql, mysql, mssql URIs)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    return isinstance(store, SqlAlchemyStore)


def _children(experiment_id: str, parent_run_id: str):
    """SELECT run_uuid of the parent's active FINISHED children (a subquery)."""
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from sqlalchemy import select

    return (select(SqlRun.run_uuid)
            .join(SqlTag, SqlTag.run_uuid == SqlRun.run_uuid)
            .where(SqlTag.key == PARENT_ID, SqlTag.value == parent_run_id,
                   SqlRun.experiment_id == int(experiment_id),
                   SqlRun.status == "FINISHED", SqlRun.lifecycle_stage == "active"))


def read_children(store, experiment_id: str, parent_run_id: str,
                  swept: Mapping[str, str]) -> list[RunRecord]:
    """Records of every active FINISHED child of the parent (duplicates per variant kept)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import select

    children = _children(experiment_id, parent_run_id)
    with store.ManagedSessionMaker() as session:
        runs = session.execute(
            select(SqlRun.run_uuid, SqlRun.name, SqlRun.start_time)
            .where(SqlRun.run_uuid.in_(children))).all()
        tags = _by_run(session.execute(
            select(SqlTag.run_uuid, SqlTag.key, SqlTag.value)
            .where(SqlTag.run_uuid.in_(children), SqlTag.key.in_(RECORD_TAGS))))
        params = _by_run(session.execute(
            select(SqlParam.run_uuid, SqlParam.key, SqlParam.value)
            .where(SqlParam.run_uuid.in_(children), SqlParam.key.in_(list(swept)))))
        metrics = _by_run(
            (run_id, key, math.nan if is_nan else value) for run_id, key, value, is_nan in
            session.execute(select(SqlLatestMetric.run_uuid, SqlLatestMetric.key,
                                   SqlLatestMetric.value, SqlLatestMetric.is_nan)
                            .where(SqlLatestMetric.run_uuid.in_(children))))
    return [decode_record(run_id=run_id, name=name, start_time=start_time,
                          tags=tags.get(run_id, {}), params=params.get(run_id, {}),
                          metrics=metrics.get(run_id, {}), swept=swept)
            for run_id, name, start_time in runs]


def _by_run(rows) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for run_id, key, value in rows:
        out.setdefault(run_id, {})[key] = value
    return out


def read_histories(store, experiment_id: str, parent_run_id: str,
                   records: Sequence[RunRecord]) -> list[RunRecord]:
    """The records with every curve's history attached, read in one ordered query.

    A curve key a record lists but without points gets empty arrays, as on the client path.
    """
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from sqlalchemy import select

    keys = sorted({key for record in records for key in record.curves})
    wanted = {record.run_id: set(record.curves) for record in records}
    found: dict[str, dict] = {run_id: {} for run_id in wanted}
    if keys:
        with store.ManagedSessionMaker() as session:
            rows = session.execute(
                select(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value,
                       SqlMetric.is_nan)
                .where(SqlMetric.run_uuid.in_(_children(experiment_id, parent_run_id)),
                       SqlMetric.key.in_(keys))
                .order_by(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step,
                          SqlMetric.timestamp, SqlMetric.value)).all()
        for run_id, key, steps, values in _curves(rows):
            if key in wanted.get(run_id, ()):
                found[run_id][key] = (steps, values)
    return [record.with_history(_complete(found[record.run_id], record.curves))
            for record in records]


def _curves(rows: list) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(run_id, key, steps, values) per contiguous block of (run_uuid, key) rows."""
    if not rows:
        return []
    run_ids, keys, steps, values, is_nan = zip(*rows)
    steps = np.array(steps, dtype=np.int64)                          # (n_points,)
    values = decode_metrics(np.array(values, dtype=np.float64),     # (n_points,)
                            np.array(is_nan, dtype=bool))
    run_col = np.array(run_ids, dtype=object)
    key_col = np.array(keys, dtype=object)
    starts = np.flatnonzero(np.r_[True, (run_col[1:] != run_col[:-1])
                                  | (key_col[1:] != key_col[:-1])])
    ends = np.r_[starts[1:], len(rows)]
    return [(run_ids[a], keys[a], steps[a:b], values[a:b]) for a, b in zip(starts, ends)]


def _complete(history: dict, curves: Sequence[str]) -> History:
    empty = (np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    return {key: history.get(key, empty) for key in curves}

