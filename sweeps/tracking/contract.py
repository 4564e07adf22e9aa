"""The MLflow layout of a sweep, and how values are written to it and read back.

The layout is a contract that users, the MLflow UI and `sweeps.report.results.load_runs` rely on:

- experiment: the sweep's name.
- parent run (name = sweep name): tags ``sweep.name``, ``sweep.config_hash``,
  ``sweep.role=parent``, ``sweep.swept`` (JSON object: swept dotted path -> value kind, in file
  order); params: the settings every variant shares and the machine (``env.*``,
  `sweeps.execution.machine`); artifact: the sweep file as given. Under successive halving
  also ``halving/rungs.csv`` (the rung table), ``halving/search.json`` (schedule, brackets'
  picks, work) and ``halving/checkpoint.npz`` (where the search stands, for resuming); under
  tpe and gp ``search/history.csv`` (round, trial, configuration, value, state); with two or
  more varying settings the plot ``importance.png``. `sweeps verify` adds the artifact ``verify.json`` and the tag ``sweep.verified``.
- child run per variant (name = ``Variant.name``), nested with ``mlflow.parentRunId``; tags
  ``sweep.role=variant``, ``sweep.variant_key``, ``sweep.group_key``, ``sweep.status``
  (ok | diverged | pruned), ``sweep.variant_index``, ``sweep.curves`` (the metric keys logged
  as histories), and under successive halving ``sweep.rung`` (the index of the last rung it
  reached) and ``sweep.stopped_epoch`` (the epoch its training ran to: its last rung's; a
  diverged one froze at ``diverged_epoch`` before), ``sweep.numerics`` (what its numbers
  depend on beyond its key: `sweeps.execution.machine.numerics_fingerprint` of the process
  that trained it; absent on children logged before it existed), and on a child copied from
  an earlier run of the same variant instead of trained (`sweeps.tracking.reuse`)
  ``sweep.reused_from`` (that run's id); params: every resolved setting under its
  dotted path; metrics: each curve as a history with step = epoch, ending with the final
  value at step = ``train.epochs`` (a pruned variant: its stopped epoch), so the run's latest
  value is the final one, ``val_*`` with a validation split, ``test_*``, ``train_seconds``
  and ``diverged_epoch`` when it diverged; artifact ``predictions.csv``. A child is set
  FINISHED only after all of its data is in, so "FINISHED" means "complete". `sweeps best` adds a logged pyfunc model
  to the winner's child run and the tag ``sweep.model_uri``.
- configuration run per group of variants that differ only by seed (not nested: no
  ``mlflow.parentRunId``, so readers of children never see it), written at the end of each
  sweep run, replacing the previous ones: tags ``sweep.role=group``, ``sweep.group_key``,
  ``sweep.sweep_run`` (the parent's run id), ``sweep.rank``, ``sweep.tied``; see
  `sweeps.tracking.groups`.

Needs no MLflow: `sweeps.tracking.track` and `sweeps.tracking.bulk` write this layout,
`sweeps.tracking.readback` reads it.
"""

from __future__ import annotations

import functools
import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

import core
from sweeps.vocabulary import RunState

class RunRole(StrEnum):
    """What a run of the sweep is (its `ROLE` tag): the sweep's parent run, one variant's
    child run, or one configuration's run (its seeds' aggregate)."""
    PARENT = "parent"
    VARIANT = "variant"
    GROUP = "group"


# Tags of the layout.
ROLE = "sweep.role"
NAME = "sweep.name"
CONFIG_HASH = "sweep.config_hash"
SWEPT = "sweep.swept"
# The parent's: the metric the sweep's file searched on (`Sweep.ranking_metric`), which readers
# given no file rank on; absent when the file names none, and on parents written before it.
RANKING_METRIC = "sweep.ranking_metric"
VARIANT_KEY = "sweep.variant_key"
GROUP_KEY = "sweep.group_key"
STATUS = "sweep.status"
VARIANT_INDEX = "sweep.variant_index"
CURVES = "sweep.curves"
RUNG = "sweep.rung"
STOPPED_EPOCH = "sweep.stopped_epoch"
SWEEP_RUN = "sweep.sweep_run"      # a configuration run's sweep (parent) run id
RANK = "sweep.rank"
TIED = "sweep.tied"
NUMERICS = "sweep.numerics"
REUSED_FROM = "sweep.reused_from"
# The tags a child's record is decoded from (`records.decode_record`; the SQL reader reads these).
RECORD_TAGS = (VARIANT_KEY, GROUP_KEY, STATUS, VARIANT_INDEX, CURVES, RUNG, STOPPED_EPOCH)
PARENT_ID = "mlflow.parentRunId"
PREDICTIONS_FILE = "predictions.csv"
VERIFIED = "sweep.verified"           # the parent's tag: `sweeps verify`'s verdict
VERIFY_FILE = "verify.json"            # the parent's artifact: what `sweeps verify` found
# MLflow's filter for the variant children a later sweep may read or reuse (any parent).
FINISHED_VARIANTS = (f"tags.`{ROLE}` = '{RunRole.VARIANT}' "
                     f"and attributes.status = '{RunState.FINISHED}'")

# MLflow's log_batch limits (mlflow.utils.validation).
MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTITIES = 1000

_FLOAT_MAX = 1.7976931348623157e308   # SQL stores +-inf as +-this; read back as inf


# --------------------------------------------------------------------------------------------
# Param values: MLflow stores strings. Each swept path has a "kind" (recorded on the parent run)
# that says how to read its strings back, so tables get real dtypes.

def encode_param(value: Any) -> str:
    """A setting as an MLflow param string: strings as is, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(value) else json.dumps(float(value))
    if isinstance(value, (tuple, list)):
        return json.dumps(_plain(value))
    return json.dumps(_plain(value), sort_keys=True)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def value_kind(values: Iterable[Any]) -> str:
    """How a swept setting's values decode: bool | int | Int64 | float | str | tuple | json."""
    values = list(values)
    present = [v for v in values if v is not None]
    has_none = len(present) < len(values)
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "json" if has_none else "bool"
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                       for v in present):
        return "Int64" if has_none else "int"
    if present and all(isinstance(v, (int, float, np.integer, np.floating))
                       and not isinstance(v, (bool, np.bool_)) for v in present):
        return "float"
    if present and not has_none and all(isinstance(v, str) for v in present):
        return "str"
    if present and not has_none and all(isinstance(v, (tuple, list)) for v in present):
        return "tuple"
    return "json"


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def decode_param(text: str | None, kind: str) -> Any:
    """Inverse of `encode_param` for a value of the given kind (None stays None)."""
    if text is None:
        return None
    if kind == "str":
        return text
    if kind == "float":
        return math.nan if text == "null" else float(text)
    if kind == "int":
        return int(text)
    if kind == "Int64":
        return None if text == "null" else int(text)
    if kind == "bool":
        return text == "true"
    try:
        return _tuples(json.loads(text))
    except ValueError:
        return text


def decode_metric(value: float) -> float:
    """MLflow's SQL stores keep NaN (is_nan) but clamp +-inf to +-float max: undo the clamp."""
    value = float(value)
    if value >= _FLOAT_MAX:
        return math.inf
    if value <= -_FLOAT_MAX:
        return -math.inf
    return value


def decode_metrics(values: np.ndarray, is_nan: np.ndarray) -> np.ndarray:
    """`decode_metric` over rows as the SQL tables hold them.

    values, is_nan : ndarray, shape (n,): the ``value`` and ``is_nan`` columns (a NaN is
        stored as 0 with is_nan set). Returns float64, shape (n,), a new array.
    """
    out = np.array(values, dtype=np.float64)
    out[np.asarray(is_nan, dtype=bool)] = math.nan
    out[out >= _FLOAT_MAX] = math.inf
    out[out <= -_FLOAT_MAX] = -math.inf
    return out


# --------------------------------------------------------------------------------------------
# What a child run holds, typed and decoded once, is a `sweeps.tracking.run_records.RunRecord`:
# the writer builds it from the values it logs, the readers from these strings.


def curve_keys(tags: Mapping[str, str]) -> list[str]:
    text = tags.get(CURVES, "")
    return [k for k in text.split(",") if k]


def sweep_kinds(sweep: Any) -> dict[str, str]:
    """{swept path: kind} in file order, from the sweep's variants."""
    return {path: value_kind(v.settings.get(path) for v in sweep.variants) for path in sweep.swept}


def shared_settings(variants: Sequence[Any]) -> dict[str, str]:
    """Settings with one value across all variants, encoded as params."""
    if not variants:
        return {}
    first = {k: encode_param(v) for k, v in variants[0].settings.items()}
    for variant in variants[1:]:
        for key in list(first):
            if key not in variant.settings or encode_param(variant.settings[key]) != first[key]:
                del first[key]
    return first


def predictions_table(dataset: Any, output_activation: str,
                      predictions: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Columns and rows of predictions.csv: test inputs, targets, predictions (one row each).

    Columns: the feature names, ``target_<name>`` and ``pred_<name>`` per output column, and
    for classification ``label`` and ``pred_label`` (class ids).
    """
    X = np.asarray(dataset.X_test, dtype=np.float64)                   # (n_test, n_in)
    _, Y = dataset.targets(output_activation)                           # (n_test, n_out)
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(predictions, dtype=np.float64).reshape(len(X), -1)   # (n_test, n_out)
    n_out = P.shape[1]
    names = list(dataset.target_names)
    if len(names) != n_out:
        names = ["y"] if n_out == 1 else [f"y{j}" for j in range(n_out)]
    columns = list(dataset.feature_names) + [f"target_{n}" for n in names] \
        + [f"pred_{n}" for n in names]
    blocks = [X, Y, P]
    if dataset.task == "classification" and dataset.labels_test is not None:
        labels = np.asarray(dataset.labels_test, dtype=np.float64)[:, None]
        guess = core.predicted_labels(P).astype(np.float64)[:, None]    # (n_test, 1)
        columns += ["label", "pred_label"]
        blocks += [labels, guess]
    return columns, np.hstack(blocks)


def write_csv(path: Path, columns: Sequence[str], values: np.ndarray) -> None:
    """A plain CSV with full float precision (round-trips exactly), as ``np.savetxt`` with
    ``fmt="%.17g"`` writes it.

    values : (n_rows, n_columns). Columns are formatted one by one and remembered: the test
    inputs and targets are the same in every variant's predictions.csv, and formatting them
    was a third of the time spent logging a child run.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    cells = [_formatted(column) for column in values.T]
    lines = [",".join(_csv_field(c) for c in columns)] + list(map(",".join, zip(*cells)))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# Columns up to this many rows are remembered (at most 128 of them: ~1 MB at 114 rows).
_REMEMBERED_ROWS = 4096


def _formatted(column: np.ndarray) -> tuple[str, ...]:
    """'%.17g' of each value of a float64 column (n_rows,)."""
    if len(column) > _REMEMBERED_ROWS:
        return _format(column)
    return _formatted_bytes(np.ascontiguousarray(column).tobytes())


@functools.lru_cache(maxsize=128)
def _formatted_bytes(column: bytes) -> tuple[str, ...]:
    return _format(np.frombuffer(column, dtype=np.float64))


def _format(column: np.ndarray) -> tuple[str, ...]:
    return tuple("%.17g" % value for value in column.tolist())


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
