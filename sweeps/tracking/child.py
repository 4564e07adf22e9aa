"""What one variant's child run holds, computed once for every writer.

The client writer (`sweeps.tracking.track`) and the bulk writer (`sweeps.tracking.bulk`) write
the same `ChildRun`, so the two can differ only in how rows reach the store, never in what
the rows say. Needs no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np

from sweeps.tracking.contract import (CURVES, GROUP_KEY, NUMERICS, PARENT_ID, PREDICTIONS_FILE,
                                      ROLE, RUNG, STATUS, STOPPED_EPOCH, VARIANT_INDEX,
                                      VARIANT_KEY, RunRole, encode_param, predictions_table,
                                      write_csv)
from sweeps.tracking.run_records import Predictions, RunRecord, make_record


@dataclass
class ChildRun:
    """One variant's child run: name, tags, params, metric points and predictions.

    Attributes
    ----------
    history : {curve key: (steps, values)}, steps (n_points,) int64, values (n_points,)
        float64: the finite logged points, then the final value at `final_step`.
    points : (key, value, step) of every metric point, histories first (one timestamp each).
    predictions : predictions.csv as arrays, or None.
    """

    variant_key: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    history: dict[str, tuple[np.ndarray, np.ndarray]]
    final: dict[str, float]
    points: list[tuple[str, float, int]]
    predictions: Predictions | None
    kinds: Mapping[str, str]
    variant: Any

    def write_predictions(self, directory: Path) -> Path | None:
        """predictions.csv in `directory` (None when the variant has no predictions)."""
        if self.predictions is None:
            return None
        path = Path(directory) / PREDICTIONS_FILE
        write_csv(path, self.predictions.columns, self.predictions.values)
        return path

    def record(self, run_id: str, start_time: int) -> RunRecord:
        """The record `sweeps.tracking.readback` reads back from this run."""
        latest = {key: float(v[-1]) for key, (s, v) in self.history.items() if len(v)}
        latest.update(self.final)
        return make_record(run_id=run_id, name=self.name, start_time=start_time,
                           variant=self.variant, tags=self.tags,
                           curves=tuple(self.history), swept=self.kinds, metrics=latest,
                           history=self.history, predictions=self.predictions)


_STEPS: dict[bytes, np.ndarray] = {}      # distinct step arrays seen, read-only, shared
_MAX_STEPS = 256


def _shared_steps(steps: np.ndarray) -> np.ndarray:
    """One read-only array per distinct step sequence: every child of a sweep logs at the same
    epochs, and a record's history is kept in the driver for the whole sweep (48,000 copies of
    the card's 101 steps were ~45 MB)."""
    key = steps.tobytes()
    shared = _STEPS.get(key)
    if shared is None:
        if len(_STEPS) >= _MAX_STEPS:
            _STEPS.clear()
        shared = _STEPS[key] = steps
        shared.setflags(write=False)
    return shared


def child_run(sweep: Any, variant: Any, result: Any, parent_run_id: str,
              kinds: Mapping[str, str], histories: Collection[str] | None = None) -> ChildRun:
    """The child run of `variant` trained to `result` (a `sweeps.execution.training.VariantResult`).

    histories : the curve keys logged as metric histories (None: every curve); the others
        still get their final value.
    """
    settings = variant.settings
    reached = getattr(result, "epoch", None)
    epochs = int(reached if reached is not None else settings.get("train.epochs", 0) or 0)
    steps = np.asarray(result.log_epochs, dtype=np.int64)
    final_step = max(epochs, int(steps[-1]) + 1 if len(steps) else 0)
    curves = [k for k in result.curves if histories is None or k in histories]
    tags = {PARENT_ID: parent_run_id, ROLE: RunRole.VARIANT, VARIANT_KEY: variant.key,
            GROUP_KEY: variant.group, STATUS: result.status,
            VARIANT_INDEX: str(variant.index), CURVES: ",".join(curves)}
    if getattr(result, "numerics", ""):
        tags[NUMERICS] = result.numerics
    if getattr(result, "rung", None) is not None:       # successive halving
        tags.update({RUNG: str(result.rung), STOPPED_EPOCH: str(final_step)})

    # Histories: finite points at their epochs, then the final value at step final_step.
    history: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    final = {k: float(v) for k, v in result.metrics.items() if v is not None}
    for key in curves:
        values = np.asarray(result.curves[key], dtype=np.float64)
        keep = np.isfinite(values)
        s, v = steps[keep], values[keep]
        if key in final:
            s = np.append(s, final_step)
            v = np.append(v, final[key])
        history[key] = (_shared_steps(s), v)
    points = [(key, float(value), int(step)) for key, (s, v) in history.items()
              for step, value in zip(s.tolist(), v.tolist())]
    points += [(key, value, final_step) for key, value in final.items() if key not in history]

    predictions = None
    dataset = (getattr(sweep, "datasets", None) or {}).get(getattr(variant, "data_key", None))
    if dataset is not None and getattr(result, "predictions", None) is not None \
            and np.size(result.predictions):
        columns, table = predictions_table(
            dataset, settings.get("model.output_activation", "identity"), result.predictions)
        predictions = Predictions(columns=tuple(columns), values=table)
    return ChildRun(
        variant_key=variant.key, name=variant.name or f"variant-{variant.index}", tags=tags,
        params={k: encode_param(v) for k, v in settings.items()}, history=history, final=final,
        points=points, predictions=predictions, kinds=kinds, variant=variant)
