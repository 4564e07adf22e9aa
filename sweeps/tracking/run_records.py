"""What a child run holds, typed: `RunRecord`, built once at the MLflow edge.

The rule: MLflow's strings are decoded here and nowhere else. The writer builds records from
the values it logs (`make_record`, no encoding round trip); the readers build them from the
strings MLflow stores (`decode_record`). `sweeps.report.results` and `sweeps.report.plots`
see only records
and never MLflow.

Needs no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from sweeps.tracking.contract import (GROUP_KEY, RUNG, STATUS, STOPPED_EPOCH, VARIANT_INDEX,
                                      VARIANT_KEY, curve_keys, decode_metric, decode_param)

History = Mapping[str, tuple[np.ndarray, np.ndarray]]   # key -> (steps int64, values float64)


@dataclass(frozen=True, eq=False)
class Predictions:
    """predictions.csv as arrays.

    columns : the header (feature names, ``target_*``, ``pred_*``, ``label``, ``pred_label``).
    values : ndarray, shape (n_test, n_columns), float64.
    """

    columns: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One FINISHED child run (one variant), decoded.

    run_id, name, start_time : the MLflow run (start_time in ms since the epoch).
    variant_key, group_key, status, index : the ``sweep.*`` tags (status: a
        `sweeps.vocabulary.Status`'s text, ok | diverged | pruned; index = the variant's
        position in the sweep).
    curves : the metric keys logged as histories.
    swept : {swept dotted path: kind} in file order, the same object for every record of a
        sweep (the kind says how a column is typed, see `contract.value_kind`).
    settings : {swept dotted path: value}, typed (``model.hidden`` a tuple, ``train.lr`` a
        float, ...). Settings every variant shares are on the parent run.
    metrics : {key: final value}, NaN and +-inf as floats.
    history : {curve key: (steps, values)}, each ndarray of shape (n_points,) int64 and
        float64; None when it was not read.
    predictions : the test predictions, when the record was built while logging (read-back
        records: None; `sweeps.tracking.readback.fetch_predictions` reads them).
    rung, stopped_epoch : successive halving's ``sweep.rung`` and ``sweep.stopped_epoch``
        tags (None for grid and random search).
    """

    run_id: str
    name: str
    start_time: int
    variant_key: str
    group_key: str
    status: str
    index: int
    curves: tuple[str, ...]
    swept: Mapping[str, str]
    settings: Mapping[str, Any]
    metrics: Mapping[str, float]
    history: History | None = None
    predictions: Predictions | None = field(default=None)
    rung: int | None = None
    stopped_epoch: int | None = None

    def with_history(self, history: History) -> "RunRecord":
        return replace(self, history=history)


def make_record(*, run_id: str, name: str, start_time: int, variant: Any,
                tags: Mapping[str, str], curves: Sequence[str], swept: Mapping[str, str],
                metrics: Mapping[str, float], history: History,
                predictions: Predictions | None) -> RunRecord:
    """The record of a child run the writer just logged, from the values it logged."""
    return RunRecord(
        run_id=run_id, name=name, start_time=int(start_time), variant_key=variant.key,
        group_key=variant.group, status=tags[STATUS], index=int(variant.index),
        curves=tuple(curves), swept=swept,
        settings={path: variant.settings.get(path) for path in swept},
        metrics={k: decode_metric(v) for k, v in metrics.items()}, history=history,
        predictions=predictions, **_halving_tags(tags))


def _halving_tags(tags: Mapping[str, str]) -> dict[str, int | None]:
    """The ``sweep.rung`` and ``sweep.stopped_epoch`` tags, typed (None when absent)."""
    return {"rung": int(tags[RUNG]) if RUNG in tags else None,
            "stopped_epoch": int(tags[STOPPED_EPOCH]) if STOPPED_EPOCH in tags else None}


def decode_record(*, run_id: str, name: str, start_time: int | None, tags: Mapping[str, str],
                  params: Mapping[str, str], metrics: Mapping[str, float],
                  swept: Mapping[str, str]) -> RunRecord:
    """The record of a child run read from MLflow: its tags, params and latest metrics as
    MLflow stores them (strings; metric values with +-inf clamped, NaN as NaN)."""
    return RunRecord(
        run_id=run_id, name=name, start_time=int(start_time or 0),
        variant_key=tags.get(VARIANT_KEY, ""), group_key=tags.get(GROUP_KEY, ""),
        status=tags.get(STATUS, ""), index=int(tags.get(VARIANT_INDEX, 0) or 0),
        curves=tuple(curve_keys(tags)), swept=swept,
        settings=decode_settings(params, swept),
        metrics={k: decode_metric(v) for k, v in metrics.items()}, **_halving_tags(tags))


def decode_settings(params: Mapping[str, str], swept: Mapping[str, str]) -> dict[str, Any]:
    """{swept path: value} from a child's params as MLflow stores them (strings)."""
    return {path: decode_param(params.get(path), kind) for path, kind in swept.items()}


def newest_per_variant(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The newest record per variant key (a resumed sweep may hold older duplicates)."""
    keep: dict[str, RunRecord] = {}
    for record in sorted(records, key=lambda r: r.start_time, reverse=True):
        if record.variant_key and record.variant_key not in keep:
            keep[record.variant_key] = record
    return list(keep.values())


def by_index(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Records in sweep order (the variant index)."""
    return sorted(records, key=lambda r: r.index)
