"""Reading a sweep's children straight from an MLflow SQL store, in a few set-based queries.

`MlflowClient` reads a sweep of N children in N/1000 ``search_runs`` pages, each rebuilding
full run entities (every tag, param and metric), and its histories in one query per metric key
and 500 runs. Here the same rows come through MLflow's own store session and table models:
one query each for the runs, their ``sweep.*`` tags, their swept params and their latest
metrics, and one for every history point, ordered so the points of one curve are contiguous.
At 4,800 children that is ~18x less work for the records and ~9x for the curves
(`benchmarks/bench_read.py`).

The rule: this module reads exactly what the client path (`sweeps.tracking.readback`) reads:
active FINISHED children of the parent, values decoded by the same `decode_record` (NaN from
``is_nan``, +-inf from the clamped float max). `tests/tracking/test_readers.py` compares
the two paths record by record.
"""

from __future__ import annotations

import math
from typing import Collection, Mapping, Sequence

import numpy as np

from sweeps.tracking.contract import PARENT_ID, RECORD_TAGS, VARIANT_KEY, decode_metrics
from sweeps.tracking.run_records import History, RunRecord, decode_record
from sweeps.vocabulary import RunState



def is_sql_store(store) -> bool:
    """True for MLflow's SQLAlchemy tracking store (sqlite, postgresql, mysql, mssql URIs)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    return isinstance(store, SqlAlchemyStore)


def _tables():
    """The columns of MLflow's tables (selected through Core, not the ORM)."""
    from mlflow.store.tracking.dbmodels import models

    return (models.SqlRun.__table__.c, models.SqlTag.__table__.c, models.SqlParam.__table__.c,
            models.SqlLatestMetric.__table__.c, models.SqlMetric.__table__.c)


def _children(experiment_id: str, parent_run_id: str, keys: Collection[str] | None = None,
              finished: bool = True):
    """SELECT run_uuid of the parent's active (FINISHED) children, of the variants `keys`
    only when given (a subquery)."""
    from sqlalchemy import select

    run, tag, *_ = _tables()
    query = (select(run.run_uuid)
             .join_from(run.run_uuid.table, tag.run_uuid.table, tag.run_uuid == run.run_uuid)
             .where(tag.key == PARENT_ID, tag.value == parent_run_id,
                    run.experiment_id == int(experiment_id), run.lifecycle_stage == "active"))
    if finished:
        query = query.where(run.status == RunState.FINISHED)
    if keys is not None:
        query = query.where(run.run_uuid.in_(
            select(tag.run_uuid).where(tag.key == VARIANT_KEY, tag.value.in_(list(keys)))))
    return query


def child_run_ids(store, experiment_id: str, parent_run_id: str,
                  keys: Collection[str] | None = None) -> list[str]:
    """The run ids of every active child of the parent, in any status (of `keys` only)."""
    with store.ManagedSessionMaker() as session:
        return [run_id for run_id, in _fetch(
            session.connection(), _children(experiment_id, parent_run_id, keys, finished=False))]


def existing_run_ids(store, run_ids: Sequence[str]) -> set[str]:
    """Those of `run_ids` the store holds (in any state)."""
    from sqlalchemy import select

    run, *_ = _tables()
    with store.ManagedSessionMaker() as session:
        return {run_id for run_id, in _fetch(session.connection(), select(run.run_uuid)
                                              .where(run.run_uuid.in_(list(run_ids))))}


def read_children(store, experiment_id: str, parent_run_id: str, swept: Mapping[str, str],
                  keys: Collection[str] | None = None) -> list[RunRecord]:
    """Records of every active FINISHED child of the parent (duplicates per variant kept),
    of the variants `keys` only when given."""
    return read_runs(store, _children(experiment_id, parent_run_id, keys), swept)


def runs_with_ids(run_ids: Collection[str]):
    """SELECT run_uuid of the runs `run_ids` (what `read_runs` and `read_curves` take)."""
    from sqlalchemy import select

    run, *_ = _tables()
    return select(run.run_uuid).where(run.run_uuid.in_(list(run_ids)))


def read_runs(store, children, swept: Mapping[str, str]) -> list[RunRecord]:
    """Records of the runs a SELECT of run_uuid (`children`) names, histories not attached."""
    from sqlalchemy import select

    run, tag, param, latest, _ = _tables()
    with store.ManagedSessionMaker() as session:
        db = session.connection()
        runs = _fetch(db, select(run.run_uuid, run.name, run.start_time)
                      .where(run.run_uuid.in_(children)))
        tags = _by_run(_fetch(db, select(tag.run_uuid, tag.key, tag.value)
                              .where(tag.run_uuid.in_(children), tag.key.in_(RECORD_TAGS))))
        params = _by_run(_fetch(db, select(param.run_uuid, param.key, param.value)
                                .where(param.run_uuid.in_(children),
                                       param.key.in_(list(swept)))))
        metrics = _by_run(
            (run_id, key, math.nan if is_nan else value) for run_id, key, value, is_nan in
            _fetch(db, select(latest.run_uuid, latest.key, latest.value, latest.is_nan)
                   .where(latest.run_uuid.in_(children))))
    return [decode_record(run_id=run_id, name=name, start_time=start_time,
                          tags=tags.get(run_id, {}), params=params.get(run_id, {}),
                          metrics=metrics.get(run_id, {}), swept=swept)
            for run_id, name, start_time in runs]


def _fetch(db, statement) -> list[tuple]:
    """All rows as the database driver returns them: plain tuples, no per-row processing.

    (SQLAlchemy's Row objects and result processors cost ~3 us a row: 1.5 s for 480,000
    history points, more than the query.) Values are ints, floats and strings on every
    driver; booleans are 0/1 on SQLite, bool elsewhere.
    """
    result = db.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _by_run(rows) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for run_id, key, value in rows:
        out.setdefault(run_id, {})[key] = value
    return out


def read_histories(store, experiment_id: str, parent_run_id: str,
                   records: Sequence[RunRecord],
                   keys: Collection[str] | None = None) -> list[RunRecord]:
    """The records with every curve's history attached, read in one ordered query (of the
    parent's FINISHED children, of the variants `keys` only when given).

    A curve key a record lists but without points gets empty arrays, as on the client path.
    Every metric row of the children is read and the keys are picked here: a condition on
    ``key`` makes SQLite (without ANALYZE statistics) walk the primary key (key, timestamp,
    ...), i.e. every row of that key in the whole store, then sort them; on ``run_uuid``
    alone it walks the (run_uuid, key, step) index, already in order.
    """
    return read_curves(store, _children(experiment_id, parent_run_id, keys), records)


def read_curves(store, children, records: Sequence[RunRecord]) -> list[RunRecord]:
    """The records with every curve's history attached, read in one ordered query of the
    metric rows of the runs a SELECT of run_uuid (`children`) names (`read_histories`)."""
    from sqlalchemy import select

    *_, metric = _tables()
    wanted = {record.run_id: set(record.curves) for record in records}
    found: dict[str, dict] = {run_id: {} for run_id in wanted}
    if any(wanted.values()):
        with store.ManagedSessionMaker() as session:
            rows = _fetch(session.connection(), select(
                metric.run_uuid, metric.key, metric.step, metric.value, metric.is_nan)
                .where(metric.run_uuid.in_(children))
                .order_by(metric.run_uuid, metric.key, metric.step, metric.timestamp,
                          metric.value))
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

