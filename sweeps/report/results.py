"""Sweep results as pandas tables: one row per variant, seed summaries, loss curves.

One builder serves both paths, so they give identical tables:

- `sweeps run` (in memory): ``frame_from_records(tracker.records())``;
- later, from MLflow alone: ``load_runs(experiment)`` reads the same records back
  (`sweeps.tracking.readback.read_sweep`) and calls the same builder.

Records are `sweeps.tracking.run_records.RunRecord`s, decoded at the MLflow edge: nothing here
knows MLflow.

Tables
------
frame (per variant): ``run_id, variant_key, group_key, status, name``, one column per swept
setting under its dotted path (``train.lr`` float64, ``model.hidden`` int64 when every
variant has one hidden layer, else text as in run names: ``8x8``; ``seed`` int64, ...), then the final metrics (``train_loss, train_mse | train_accuracy, test_loss,
test_mse | test_accuracy, diverged_epoch, train_seconds``, and ``val_*`` with a validation
split). Under successive halving also ``rung`` and ``stopped_epoch`` (Int64), after the
settings. ``frame.attrs["swept"]`` lists the setting columns.

summary (per group = every swept setting but `over`): the settings, ``group_key`` (when
over="seed"), ``n``, ``diverged``, then ``<metric>_{mean,std,sem,min,max}`` over the variants
that did not diverge, and ``rank`` by the chosen metric (1 = best). Best first. Under
successive halving also ``rung`` and ``stopped_epoch`` per group, and the groups that reached
the last rung rank first (the others stopped earlier, on fewer epochs).

curves (long): ``run_id`` (categorical: a code per row), ``epoch`` and one column per curve
metric (``train_loss``, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sweeps.records import format_value
from sweeps.tracking.run_records import Predictions, RunRecord
from sweeps.vocabulary import METRICS, Status, default_ranking, direction

ID_COLUMNS = ("run_id", "variant_key", "group_key", "status", "name")
HALVING_COLUMNS = ("rung", "stopped_epoch")     # successive halving's, from the run's tags
# Metric columns first in this order, any others after them (sorted).
METRIC_ORDER = tuple(METRICS)
STATS = ("mean", "std", "sem", "min", "max")
RANKED_ON = "ranked_on"    # summary.csv: the metric its `rank` column ranks on


# --------------------------------------------------------------------------------------------
# Builders (records -> tables)

def frame_from_records(records: Sequence[RunRecord],
                       swept: Mapping[str, str] | None = None,
                       ranking_metric: str | None = None) -> pd.DataFrame:
    """The per-variant table from run records (`SweepTracker.records()` or `load_runs`).

    swept : {dotted path: kind} of the setting columns; default: the records' own.
    ranking_metric : the metric the sweep searched on (`Sweep.ranking_metric`), kept as
        ``frame.attrs["ranking_metric"]``: `summarize` ranks on it when given no metric.
    """
    records = list(records)
    if swept is None:
        swept = records[0].swept if records else {}
    swept = dict(swept)
    columns: dict[str, Any] = {
        "run_id": pd.array([r.run_id for r in records], dtype="str"),
        "variant_key": pd.array([r.variant_key for r in records], dtype="str"),
        "group_key": pd.array([r.group_key for r in records], dtype="str"),
        "status": pd.array([r.status for r in records], dtype="str"),
        "name": pd.array([r.name for r in records], dtype="str"),
    }
    for path, kind in swept.items():
        columns[path] = _setting_column([r.settings.get(path) for r in records], kind)
    if any(r.rung is not None for r in records):
        for name in HALVING_COLUMNS:
            columns[name] = pd.array([getattr(r, name) for r in records], dtype="Int64")
    keys = {k for r in records for k in r.metrics}
    if keys:
        keys.add("diverged_epoch")          # always present once there are metrics
    for key in metric_columns(keys):
        values = np.array([r.metrics.get(key, math.nan) for r in records], dtype=np.float64)
        if key == "diverged_epoch":
            columns[key] = pd.array(
                [pd.NA if math.isnan(v) else int(v) for v in values], dtype="Int64")
        else:
            columns[key] = values
    frame = pd.DataFrame(columns)
    frame.attrs["swept"] = list(swept)
    if ranking_metric:
        frame.attrs["ranking_metric"] = ranking_metric
    return frame


def _setting_column(values: list, kind: str):
    if kind == "int":
        return pd.array(values, dtype="int64")
    if kind == "Int64":
        return pd.array(values, dtype="Int64")
    if kind == "float":
        return np.array(values, dtype=np.float64)
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "str":
        return pd.array(values, dtype="str")
    if kind == "tuple":
        return _layers_column(values)
    column = np.empty(len(values), dtype=object)   # mixed values
    column[:] = values
    return column


def _layers_column(values: list[tuple]):
    """Layer sizes (model.hidden) as a column that groups and survives parquet: the size itself
    when every variant has one hidden layer, else text as in run names ("8x8")."""
    if all(len(v) == 1 and isinstance(v[0], (int, np.integer)) for v in values):
        return pd.array([int(v[0]) for v in values], dtype="int64")
    return pd.array([format_value(v) for v in values], dtype="str")


def metric_columns(keys) -> list[str]:
    """Metric keys in display order: METRIC_ORDER first, then the rest sorted."""
    keys = set(keys)
    return [k for k in METRIC_ORDER if k in keys] + sorted(keys - set(METRIC_ORDER))


def curves_from_records(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Long-format curves: one row per (run_id, epoch), one column per curve metric.

    ``run_id`` is categorical: one code per row (int32), each run id text once. Built in
    place: each column is allocated once at its full length and filled per record. At 48,000
    variants the rows are 4.8 million: per-record arrays and an object column peaked at
    ~1.2 GB, one Arrow string per row took 185 MB, the codes take 19 MB.
    """
    keys = metric_columns({k for r in records for k in (r.history or {})})
    with_history = [record for record in records if record.history]
    steps_of = []
    for record in with_history:
        steps = [np.asarray(s, dtype=np.int64) for s, _ in record.history.values()]
        steps_of.append(steps[0] if len(steps) == 1 else np.unique(np.concatenate(steps)))
    counts = np.array([len(steps) for steps in steps_of], dtype=np.int64)      # (n_runs,)
    ends = np.cumsum(counts)
    epochs = np.concatenate(steps_of) if steps_of else np.array([], dtype=np.int64)
    values = {key: np.full(len(epochs), np.nan) for key in keys}          # each (n_rows,)
    for record, steps, end, count in zip(with_history, steps_of, ends, counts):
        for key, (s, v) in record.history.items():
            if key in values:
                column = values[key][end - count:end]
                column[np.searchsorted(steps, np.asarray(s, dtype=np.int64))] = v
    codes, ids = pd.factorize(pd.Index([record.run_id for record in with_history], dtype="str"))
    run_ids = pd.Categorical.from_codes(np.repeat(codes.astype(np.int32), counts), ids)
    return pd.DataFrame({"run_id": run_ids, "epoch": epochs, **values}, copy=False)


def predictions_from_records(records: Sequence[RunRecord]) -> dict[str, pd.DataFrame]:
    """{run_id: predictions table} for the records that carry predictions (in-memory ones)."""
    return {record.run_id: predictions_frame(record.predictions) for record in records
            if record.predictions is not None}


def predictions_frame(predictions: Predictions) -> pd.DataFrame:
    """predictions.csv as a table: one row per test example, float64 columns."""
    return pd.DataFrame(predictions.values, columns=list(predictions.columns))


# --------------------------------------------------------------------------------------------
# Loading from MLflow

def load_runs(experiment: str | None = None, tracking_uri: str | None = None, sweep: Any = None,
              *, parent_run_id: str | None = None) -> pd.DataFrame:
    """One row per variant of a sweep, read back from MLflow alone; ``attrs["ranking_metric"]``
    the metric it searched on when the file or the parent run says (`readback.SweepRead`).

    experiment : the sweep's name (default: `sweep.name`).
    sweep : optional loaded Sweep; picks the newest run of exactly this config (hash).
    parent_run_id : a specific sweep run instead of the newest one in the experiment.
    """
    from sweeps.tracking.readback import experiment_name, read_sweep

    read = read_sweep(experiment_name(experiment, sweep), tracking_uri, sweep,
                      parent_run_id=parent_run_id)
    return frame_from_records(read.records, swept=read.swept, ranking_metric=read.ranking_metric)


def load_curves(experiment: str | None = None, tracking_uri: str | None = None,
                sweep: Any = None, *, parent_run_id: str | None = None) -> pd.DataFrame:
    """Every curve of a sweep, long format (run_id, epoch, metrics), fetched in bulk."""
    from sweeps.tracking.readback import experiment_name, read_sweep

    read = read_sweep(experiment_name(experiment, sweep), tracking_uri, sweep,
                      parent_run_id=parent_run_id, histories=True)
    return curves_from_records(read.records)


def load_predictions(run_ids: Sequence[str], tracking_uri: str | None = None
                     ) -> dict[str, pd.DataFrame]:
    """{run_id: predictions.csv as a table} for the given child runs (missing ones left out)."""
    from sweeps.tracking.readback import fetch_predictions

    return {run_id: predictions_frame(p)
            for run_id, p in fetch_predictions(tracking_uri, list(run_ids)).items()}


# --------------------------------------------------------------------------------------------
# Summaries

def setting_columns(frame: pd.DataFrame) -> list[str]:
    """The swept-setting columns of a per-variant frame (attrs, else by elimination)."""
    swept = frame.attrs.get("swept")
    if swept is not None:
        return [c for c in swept if c in frame.columns]
    known = set(ID_COLUMNS) | set(HALVING_COLUMNS)
    return [c for c in frame.columns if c not in known and not _is_metric(c)]


def _is_metric(column: str) -> bool:
    return column in METRIC_ORDER or column.startswith(("train_", "test_", "val_"))


def default_metric(frame: pd.DataFrame) -> str:
    """The metric the sweep searched on (``frame.attrs["ranking_metric"]``, from the sweep file
    or its parent run), else the first of `DEFAULT_RANKING` (val_loss, test_loss, train_loss)
    the frame has."""
    metric = frame.attrs.get("ranking_metric") or default_ranking(frame.columns)
    if metric:
        return metric
    raise ValueError("the frame has neither test_loss nor train_loss")


def ranking_metric(summary: pd.DataFrame) -> str:
    """The metric a summary is ranked by: what `summarize` recorded, else (a summary read back
    from CSV) its ``ranked_on`` column, else (a CSV written before that column) the default
    for its columns."""
    recorded = summary.attrs.get("metric")
    if not recorded and RANKED_ON in summary and summary[RANKED_ON].notna().any():
        recorded = str(summary[RANKED_ON].dropna().iloc[0])
    return recorded or default_metric(summary.rename(columns=lambda c: c.removesuffix("_mean")))


def summarize(frame: pd.DataFrame, over: str | Sequence[str] | None = "seed",
              metric: str | None = None) -> pd.DataFrame:
    """Aggregate the variants that differ only in `over` (seeds by default): one row per group.

    Statistics (n, mean, std, sem = std / sqrt(count), min, max) are over the group's variants
    that did not diverge; diverged ones are counted in ``diverged``, never averaged in. Ranked
    by the mean of `metric` (default `default_metric`; which way is better:
    `sweeps.vocabulary.direction`), groups without a value last; under successive halving the
    groups of a later rung first. Rows sorted best first. Raises ValueError for a metric the
    frame lacks or whose direction is not known.
    """
    over_cols = [over] if isinstance(over, str) else list(over or [])
    settings = setting_columns(frame)
    by = [c for c in settings if c not in over_cols]
    if frame.empty and metric is None:          # nothing finished yet: an empty summary
        empty = pd.DataFrame({**{c: frame[c] for c in by},
                              "n": pd.Series(dtype=np.int64), "diverged": pd.Series(dtype=np.int64),
                              "rank": pd.Series(dtype=np.int64)})
        empty.attrs.update({"by": by, "over": over_cols, "metric": None})
        return empty
    metric = metric or default_metric(frame)
    if metric not in frame.columns:
        raise ValueError(f"no metric {metric!r} in the frame; have "
                         f"{', '.join(metric_columns(c for c in frame.columns if _is_metric(c)))}")
    ascending = direction(metric) == "min"          # (before the work: an unknown one raises)
    metrics = [c for c in metric_columns(c for c in frame.columns if _is_metric(c))
               if c != "diverged_epoch"]

    diverged = (frame["status"] == Status.DIVERGED).to_numpy()
    keys = _group_ids(frame, by)
    position = {k: i for i, k in enumerate(dict.fromkeys(keys))}   # first-seen order
    gid = np.array([position[k] for k in keys], dtype=np.int64)
    n_groups = len(position)
    first_row = np.full(n_groups, -1)
    for i in range(len(gid) - 1, -1, -1):
        first_row[gid[i]] = i

    out: dict[str, Any] = {}
    for c in by:
        out[c] = frame[c].iloc[first_row].reset_index(drop=True)
    if over_cols == ["seed"] and "group_key" in frame.columns:
        out["group_key"] = frame["group_key"].iloc[first_row].reset_index(drop=True)
    out["n"] = np.bincount(gid, minlength=n_groups).astype(np.int64)
    out["diverged"] = np.bincount(gid, weights=diverged, minlength=n_groups).astype(np.int64)
    halving = "rung" in frame.columns
    for name in HALVING_COLUMNS if halving else ():        # a group's furthest (its seeds')
        reached = frame[name].to_numpy(dtype=np.float64, na_value=-1.0)
        furthest = np.full(n_groups, -1.0)
        np.maximum.at(furthest, gid, reached)
        out[name] = pd.array([pd.NA if v < 0 else int(v) for v in furthest], dtype="Int64")

    for m in metrics:
        values = frame[m].to_numpy(dtype=np.float64, na_value=np.nan).copy()
        values[diverged] = np.nan
        stats = _group_stats(values, gid, n_groups)
        for s in STATS:
            out[f"{m}_{s}"] = stats[s]

    summary = pd.DataFrame(out)
    score = summary[f"{metric}_mean"]
    rank = score.rank(method="min", ascending=ascending, na_option="bottom")
    if halving:     # a later rung first: rank within rung, offset by the groups of later rungs
        rung = summary["rung"].fillna(-1).astype(np.int64)
        rank = rank.groupby(rung).rank(method="min") + rung.map(
            lambda r: int((rung > r).sum()))
    summary["rank"] = rank.astype(np.int64)
    summary = summary.sort_values("rank", kind="stable").reset_index(drop=True)
    summary.attrs.update({"by": by, "over": over_cols, "metric": metric})
    return summary


def _group_ids(frame: pd.DataFrame, by: list[str]) -> list:
    """A hashable group id per row (tuples of the `by` values; None/NaN made comparable)."""
    if not by:
        return [()] * len(frame)
    cols = [[_hashable(v) for v in frame[c].tolist()] for c in by]
    return list(zip(*cols))


def _hashable(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ("<missing>",)
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    return value


def _group_stats(values: np.ndarray, gid: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """mean, std (ddof=1), sem, min, max per group, ignoring NaN."""
    ok = ~np.isnan(values)
    count = np.bincount(gid[ok], minlength=n_groups).astype(np.float64)
    total = np.bincount(gid[ok], weights=values[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
        dev = np.zeros(n_groups)
        np.add.at(dev, gid[ok], (values[ok] - mean[gid[ok]]) ** 2)
        std = np.where(count > 1, np.sqrt(dev / np.maximum(count - 1, 1)), np.nan)
        sem = np.where(count > 1, std / np.sqrt(np.maximum(count, 1)), np.nan)
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, gid[ok], values[ok])
    np.maximum.at(hi, gid[ok], values[ok])
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return {"mean": mean, "std": std, "sem": sem, "min": lo, "max": hi}


def best_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The best group's metrics for the parent run, named like the children's metrics.

    Each metric's mean under its own name (so the MLflow runs table shows the winner in the
    children's columns), the ranking metric's std as ``<metric>_std``, and ``n``, ``diverged``.
    """
    if summary.empty:
        return {}
    row = summary.iloc[0]
    metric = ranking_metric(summary)
    out = {c[:-len("_mean")]: row[c] for c in summary.columns if c.endswith("_mean")}
    out[f"{metric}_std"] = row.get(f"{metric}_std")
    out["n"], out["diverged"] = row["n"], row["diverged"]
    return {k: float(v) for k, v in out.items() if v is not None and not pd.isna(v)}


# --------------------------------------------------------------------------------------------
# Output

def format_summary(summary: pd.DataFrame, top: int = 10) -> str:
    """The best `top` groups as a terminal table: settings, n, diverged, metric mean ± std."""
    if summary.empty:
        return "(no finished variants)"
    by = summary.attrs.get("by")
    if by is None:   # read back from CSV: the columns before "n"
        cols = list(summary.columns)
        by = cols[:cols.index("n")] if "n" in cols else []
        by = [c for c in by if c != "group_key"]
    metric = ranking_metric(summary)
    shown = summary.sort_values("rank", kind="stable").head(top) if "rank" in summary else \
        summary.head(top)
    table: dict[str, list] = {"rank": shown["rank"].tolist()} if "rank" in shown else {}
    for c in by:
        table[c] = [format_value(v) for v in shown[c].tolist()]
    table["n"] = shown["n"].tolist()
    table["diverged"] = shown["diverged"].tolist()
    if "stopped_epoch" in shown:
        table["epochs"] = [_num(v) for v in shown["stopped_epoch"]]
    table[metric] = [_pm(m, s) for m, s in zip(shown[f"{metric}_mean"], shown[f"{metric}_std"])]
    if "tied" in shown and shown["tied"].notna().any():
        table["vs best"] = tie_marks(shown)
    for other in ("train_loss", "val_loss", "test_loss", "test_mse", "test_accuracy"):
        if other != metric and f"{other}_mean" in shown:
            table[f"{other} (mean)"] = [_num(v) for v in shown[f"{other}_mean"]]
    text = pd.DataFrame(table).to_string(index=False)
    more = len(summary) - len(shown)
    return text + (f"\n... {more} more groups" if more > 0 else "")


def tie_marks(summary: pd.DataFrame) -> list[str]:
    """Per row: "best" (the first), "tied" (the seeds cannot tell it from the best), "worse",
    or "" (not tested; `ties.mark_ties`)."""
    marks = []
    for i, tied in enumerate(summary["tied"].tolist()):
        if pd.isna(tied):
            marks.append("")
        else:
            marks.append("best" if i == 0 else "tied" if bool(tied) else "worse")
    return marks


def _num(value: float) -> str:
    return "nan" if value is None or pd.isna(value) else f"{value:.4g}"


def _pm(mean: float, std: float) -> str:
    if mean is None or pd.isna(mean):
        return "(all diverged)"
    return _num(mean) if pd.isna(std) else f"{_num(mean)} ± {_num(std)}"


def save(out_dir: str | Path, frame: pd.DataFrame, summary: pd.DataFrame,
         curves: pd.DataFrame) -> list[Path]:
    """results.parquet (per variant), summary.csv (per group), curves.parquet (long)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.parquet", out / "summary.csv", out / "curves.parquet"]
    _for_file(frame).to_parquet(paths[0], index=False)
    save_summary_csv(summary, paths[1])
    curves.to_parquet(paths[2], index=False)
    return paths


def save_summary_csv(summary: pd.DataFrame, path: str | Path) -> None:
    """The summary as CSV, with a ``ranked_on`` column after ``rank`` (the metric, on every
    row): a CSV keeps no attrs, and its ranks must say what they rank by."""
    metric = summary.attrs.get("metric")
    if metric and "rank" in summary and RANKED_ON not in summary:
        summary = summary.copy()
        summary.insert(summary.columns.get_loc("rank") + 1, RANKED_ON, metric)
    summary.to_csv(path, index=False)


def _for_file(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuple-valued settings as lists (Arrow list columns); attrs kept as metadata."""
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object and any(isinstance(v, tuple) for v in out[c]):
            out[c] = [list(v) if isinstance(v, tuple) else v for v in out[c]]
    return out
