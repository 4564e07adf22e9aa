"""Plots of a sweep's tables (matplotlib, Agg backend, PNG files).

- ``loss_curves.png``: the best groups' training loss against epoch, the mean across seeds
  with a min-max band, log-scaled loss.
- ``loss_vs_lr.png``: final train (and test) loss against the learning rate (or the first
  swept numeric setting), one line per hidden size (or the next swept setting); error bars =
  min-max across seeds on the (usual) log scale, where mean - std can be negative, else
  ± std; other swept settings at their best value for each point.
- ``predictions.png``: the best group's variants (at most `MAX_PREDICTION_VARIANTS`), test
  predictions against targets.
- ``rungs.png`` (successive halving): every group's curve rung by rung, the pruned ones
  faded (`sweeps.report.rung_plot`).
- ``importance.png``: which settings explain the ranking metric (`sweeps.report.importance`),
  when at least two vary.
- ``pareto.png``: a sweep searched on several metrics (``summary.attrs["objectives"]``): every
  configuration on the first two, the Pareto front (`sweeps.report.pareto`) joined.

Drawing needs matplotlib, imported on the first plot; choosing what to draw
(`curves_wanted`, `predictions_wanted`) needs only pandas.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import pandas as pd

from sweeps.records import format_value
from sweeps.report import figures, rung_plot
from sweeps.report.results import ranking_metric, setting_columns
from sweeps.vocabulary import direction

X_PREFERRED = ("train.lr",)
LINE_PREFERRED = ("model.hidden",)
MAX_CURVE_GROUPS = 8
MAX_PREDICTION_VARIANTS = 10      # more markers than this hide each other (and the legend)


# Every file `write_all` can draw, in the order it draws them.
LOSS_CURVES, LOSS_VS_LR, PREDICTIONS_PLOT, RUNGS, IMPORTANCE, PARETO = (
    "loss_curves.png", "loss_vs_lr.png", "predictions.png", "rungs.png", "importance.png",
    "pareto.png")
PLOT_FILES = (LOSS_CURVES, LOSS_VS_LR, PREDICTIONS_PLOT, RUNGS, IMPORTANCE, PARETO)


def write_all(out_dir: str | Path, frame: pd.DataFrame, summary: pd.DataFrame,
              curves: pd.DataFrame, *,
              predictions: Mapping[str, pd.DataFrame] | None = None,
              rungs: pd.DataFrame | None = None,
              only: Collection[str] = PLOT_FILES) -> list[Path]:
    """Every plot that the tables support (of the files named in `only`); returns the files
    written, in `PLOT_FILES` order.

    predictions : {run_id: predictions table} of (at least) the best group's variants,
        `predictions_wanted` (`results.predictions_from_records` or
        `results.load_predictions`). Without them, no predictions plot.
    rungs : `rung_plot.group_curves` of a successive-halving sweep (None: no rung plot).
    """
    unknown = set(only) - set(PLOT_FILES)
    if unknown:
        raise ValueError(f"no such plots: {sorted(unknown)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions = dict(predictions or {})
    drawers = {LOSS_CURVES: lambda p: loss_curves(p, frame, summary, curves),
               LOSS_VS_LR: lambda p: loss_vs_setting(p, frame, summary),
               PREDICTIONS_PLOT: lambda p: predictions_plot(p, frame, summary, predictions),
               RUNGS: lambda p: rung_plot.draw(p, rungs),
               IMPORTANCE: lambda p: importance_plot(p, summary),
               PARETO: lambda p: pareto_plot(p, summary)}
    return [out / name for name in PLOT_FILES if name in only and drawers[name](out / name)]


def predictions_wanted(frame: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The run ids whose predictions the predictions plot draws: the best group's first
    `MAX_PREDICTION_VARIANTS`."""
    if summary.empty:
        return []
    rows = _group_rows(frame, summary, summary.iloc[0])
    return rows["run_id"].tolist()[:MAX_PREDICTION_VARIANTS]


def curves_wanted(frame: pd.DataFrame, summary: pd.DataFrame,
                  top: int = MAX_CURVE_GROUPS) -> list[str]:
    """The run ids whose curves `loss_curves` draws: the variants of the `top` best groups."""
    wanted: list[str] = []
    for _, row in summary.head(top).iterrows():
        wanted += _group_rows(frame, summary, row)["run_id"].tolist()
    return wanted


def _label(settings: Mapping[str, Any]) -> str:
    parts = [f"{path.split('.')[-1]}={format_value(value)}" for path, value in settings.items()]
    return " ".join(parts) or "all variants"


def _group_rows(frame: pd.DataFrame, summary: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    """The variants of one summary row's group."""
    by = summary.attrs.get("by") or [c for c in setting_columns(frame) if c in summary.columns]
    mask = np.ones(len(frame), dtype=bool)
    for c in by:
        value = row[c]
        mask &= np.array([_same(v, value) for v in frame[c].tolist()], dtype=bool)
    return frame[mask]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) if not isinstance(a, (np.ndarray, list)) else list(a) == list(b)


def loss_curves(path: Path, frame: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame,
                metric: str = "train_loss", top: int = MAX_CURVE_GROUPS) -> bool:
    """Mean curve across seeds with a min-max band for the `top` best groups."""
    if curves.empty or metric not in curves.columns or summary.empty:
        return False
    plt = figures.pyplot()
    by = summary.attrs.get("by") or []
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = 0
    for _, row in summary.head(top).iterrows():
        runs = _group_rows(frame, summary, row)["run_id"]
        part = curves[curves["run_id"].isin(runs)]
        if part.empty:
            continue
        table = part.pivot_table(index="epoch", columns="run_id", values=metric, aggfunc="first",
                                 dropna=False)
        values = table.to_numpy(dtype=np.float64)          # (n_epochs, n_seeds)
        values = np.where(values > 0, values, np.nan)      # log scale: positive values only
        finite = np.isfinite(values).any(axis=1)
        if not finite.any():
            continue
        epochs = table.index.to_numpy()[finite]
        values = values[finite]
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=1)
            lo, hi = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
        label = f"#{int(row['rank'])} {_label({c: row[c] for c in by})}" if "rank" in row \
            else _label({c: row[c] for c in by})
        line, = ax.plot(epochs, mean, label=label)
        ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (mean across seeds, band = min-max)")
    ax.set_title(f"Training curves of the {drawn} best groups")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return figures.write_png(fig, path)


def choose_axes(frame: pd.DataFrame, summary: pd.DataFrame) -> tuple[str | None, str | None]:
    """(x setting, line setting): the learning rate and hidden size when they are swept, else
    the first swept numeric setting with several values (or the first swept setting) and the
    next swept setting."""
    by = summary.attrs.get("by") or [c for c in setting_columns(frame) if c in summary.columns]
    varied = [c for c in by if summary[c].map(repr).nunique() > 1]
    numeric = [c for c in varied if _numeric(summary[c])]
    x = next((c for c in X_PREFERRED if c in numeric),
             numeric[0] if numeric else (varied[0] if varied else None))
    rest = [c for c in varied if c != x]
    line = next((c for c in LINE_PREFERRED if c in rest), rest[0] if rest else None)
    return x, line


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def loss_vs_setting(path: Path, frame: pd.DataFrame, summary: pd.DataFrame) -> bool:
    """Final loss against the x setting, one line per line-setting value; error bars
    (`error_bars`): min-max on a log axis, +- std on a linear one."""
    x, line = choose_axes(frame, summary)
    if x is None:
        return False
    metrics = [m for m in ("train_loss", "test_loss") if f"{m}_mean" in summary.columns]
    if not metrics:
        return False
    plt = figures.pyplot()
    numeric_x = _numeric(summary[x])
    categories = list(dict.fromkeys(summary[x].map(_key)))
    if not numeric_x:
        try:
            categories.sort()
        except TypeError:
            pass
    position = {c: i for i, c in enumerate(categories)}
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
    rank_metric = ranking_metric(summary)
    line_values = list(dict.fromkeys(summary[line].map(_key))) if line else [None]
    try:
        line_values.sort()
    except TypeError:       # mixed kinds: keep first-seen order
        pass
    for ax, metric in zip(axes[0], metrics):
        log_y = bool((summary[f"{metric}_mean"] > 0).any())
        for value in line_values:
            part = summary if line is None else summary[summary[line].map(_key) == value]
            part = best_for_each_x(part, x, rank_metric)
            xs = part[x].to_numpy(dtype=np.float64) if numeric_x else \
                np.array([position[_key(v)] for v in part[x]], dtype=np.float64)
            order = np.argsort(xs, kind="stable")
            xs = xs[order]
            ys = part[f"{metric}_mean"].to_numpy(dtype=np.float64)[order]
            err, bars = error_bars(part.iloc[order], metric, log_y)
            label = "all" if line is None else f"{line.split('.')[-1]}={format_value(value)}"
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
        if numeric_x:
            values = summary[x].to_numpy(dtype=np.float64)
            if np.all(values > 0) and values.max() / values.min() >= 10:
                ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(categories)), [format_value(c) for c in categories])
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(f"final {metric} (mean, {bars})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    others = [c for c in (summary.attrs.get("by") or []) if c not in (x, line)]
    title = f"Final loss against {x}"
    if others:
        title += f" (best {', '.join(o.split('.')[-1] for o in others)} per point)"
    dead = int((summary["diverged"] == summary["n"]).sum())
    if dead:
        title += f"; {dead} all-diverged groups not drawn"
    fig.suptitle(title)
    return figures.write_png(fig, path)


def best_for_each_x(groups: pd.DataFrame, x: str, metric: str) -> pd.DataFrame:
    """Of summary rows that differ in other swept settings too, the best one for each value
    of the setting `x`: by `metric`'s mean in its own direction (`vocabulary.direction`),
    rows without a value last."""
    ordered = groups.sort_values(f"{metric}_mean", ascending=direction(metric) == "min",
                                 na_position="last", kind="stable")
    return ordered[~ordered[x].map(_key).duplicated()]


def error_bars(rows: pd.DataFrame, metric: str, log_y: bool) -> tuple[np.ndarray, str]:
    """(yerr of shape (2, len(rows)): below and above the mean, what they show).

    On a log axis ± std runs below zero whenever std > mean, and matplotlib drops such bars:
    the group's min and max are shown instead (always positive for positive losses).
    """
    mean = rows[f"{metric}_mean"].to_numpy(dtype=np.float64)
    if log_y and {f"{metric}_min", f"{metric}_max"} <= set(rows.columns):
        below = mean - rows[f"{metric}_min"].to_numpy(dtype=np.float64)
        above = rows[f"{metric}_max"].to_numpy(dtype=np.float64) - mean
        what = "bars = min-max across seeds"
    else:
        below = above = rows[f"{metric}_std"].to_numpy(dtype=np.float64)
        what = "bars = ± std across seeds"
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None), what


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, np.ndarray)) else value


def predictions_plot(path: Path, frame: pd.DataFrame, summary: pd.DataFrame,
                     predictions: Mapping[str, pd.DataFrame]) -> bool:
    """Test predictions against targets for the best group's variants (the first
    `MAX_PREDICTION_VARIANTS` of them)."""
    if summary.empty or not predictions:
        return False
    best = summary.iloc[0]
    rows = _group_rows(frame, summary, best)
    # Legend: what differs inside the group (the seed), not the settings the title shows.
    over = [c for c in summary.attrs.get("over") or [] if c in rows.columns]
    tables = [(_label({c: row[c] for c in over}) if over else row["name"],
               predictions[row["run_id"]]) for _, row in rows.iterrows()
              if row["run_id"] in predictions][:MAX_PREDICTION_VARIANTS]
    if not tables:
        return False
    plt = figures.pyplot()
    targets = [c[len("target_"):] for c in tables[0][1].columns if c.startswith("target_")]
    targets = targets[:4]
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(max(6, 5 * len(targets)), 4.5),
                             squeeze=False)
    for ax, target in zip(axes[0], targets):
        lo, hi = math.inf, -math.inf
        for name, table in tables:
            t = table[f"target_{target}"].to_numpy(dtype=np.float64)
            p = table[f"pred_{target}"].to_numpy(dtype=np.float64)
            ax.plot(t, p, "o", alpha=0.7, label=str(name))
            both = np.concatenate([t, p])
            both = both[np.isfinite(both)]
            if both.size:
                lo, hi = min(lo, both.min()), max(hi, both.max())
        if math.isfinite(lo):
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", linewidth=1,
                    label="prediction = target")
        ax.set_xlabel(f"target {target}")
        ax.set_ylabel(f"prediction {target}")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    by = summary.attrs.get("by") or []
    shown = f" ({len(tables)} of {len(rows)} variants)" if len(tables) < len(rows) else ""
    fig.suptitle(f"Test predictions of the best group{shown}:\n"
                 f"{_label({c: best[c] for c in by})}", fontsize="medium")
    return figures.write_png(fig, path)


def importance_plot(path: Path, summary: pd.DataFrame) -> bool:
    """Which settings explain the ranking metric (`sweeps.report.importance`), one bar each;
    False (nothing drawn) unless at least two settings vary over enough configurations."""
    from sweeps.report.importance import importances

    table = importances(summary)
    if table.empty:
        return False
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(table)))
    ax.barh(table["setting"][::-1], table["importance"][::-1], color="tab:blue")
    ax.set_xlabel("importance (share, mean decrease in impurity of a random forest)")
    ax.set_title(f"What explains {summary.attrs.get('metric')} "
                 f"({len(summary)} configurations, means over seeds)")
    return figures.write_png(fig, path)


def pareto_plot(path: Path, summary: pd.DataFrame) -> bool:
    """Every configuration on the first two objectives, the Pareto-optimal ones joined; False
    (nothing drawn) unless the summary names two or more objectives."""
    from sweeps.report.pareto import pareto_optimal

    objectives = summary.attrs.get("objectives") or []
    if len(objectives) < 2:
        return False
    optimal = pareto_optimal(summary, objectives)
    (x_name, x_mode), (y_name, y_mode) = objectives[:2]
    x, y = summary[f"{x_name}_mean"], summary[f"{y_name}_mean"]
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(x[~optimal], y[~optimal], s=14, color="0.6", label="configurations")
    order = np.argsort(x[optimal].to_numpy())
    ax.plot(x[optimal].to_numpy()[order], y[optimal].to_numpy()[order], "o-", color="tab:red",
            label=f"Pareto front ({int(optimal.sum())})")
    ax.set_xlabel(f"{x_name} ({x_mode}), mean over seeds")
    ax.set_ylabel(f"{y_name} ({y_mode}), mean over seeds")
    ax.legend()
    return figures.write_png(fig, path)
