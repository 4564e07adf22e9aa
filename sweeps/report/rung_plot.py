"""``rungs.png``: a successive-halving sweep's curves, rung by rung, the pruned ones faded.

One line per group (the mean over its seeds) of the metric the search ranks on, drawn up to
the epoch the group stopped at: the best groups that reached the last rung in colour, the
others that did in thin blue, the pruned ones in faded grey, and a dashed line at each rung
a group stopped at. The table
is computed with pandas in the driver (`group_curves`), so the plot helper process gets
one small frame, not every variant's curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sweeps.report import figures
from sweeps.report.results import ranking_metric
from sweeps.vocabulary import Status

MAX_COLOURED = 10     # survivors drawn in colour with a legend entry; the rest in one colour


def group_curves(frame: pd.DataFrame, summary: pd.DataFrame,
                 curves: pd.DataFrame) -> pd.DataFrame | None:
    """Long table: group (its rank), epoch, value, rung, survived; None unless halving.

    value : the group's mean over seeds of the ranking metric's curve (the search's metric
        when it is a curve, else ``train_loss``) at that epoch.
    """
    if "rung" not in frame.columns or summary.empty or curves.empty:
        return None
    metric = ranking_metric(summary)
    if metric not in curves.columns:
        metric = "train_loss"
    if metric not in curves.columns:
        return None
    by = summary.attrs.get("by") or []
    keys = frame[by].astype(str).agg("|".join, axis=1) if by else pd.Series("", index=frame.index)
    ranks = dict(zip(summary[by].astype(str).agg("|".join, axis=1) if by else [""],
                     summary["rank"]))
    last = int(frame["rung"].max())
    group_of = pd.DataFrame({"run_id": frame["run_id"], "group": keys.map(ranks),
                             "rung": frame["rung"]})
    table = curves[["run_id", "epoch", metric]].merge(group_of, on="run_id")
    table = (table.groupby(["group", "epoch"], as_index=False)
             .agg(value=(metric, "mean"), rung=("rung", "max")))
    table["survived"] = table["rung"] == last
    table.attrs["metric"] = metric
    stopped = frame.loc[frame["status"] != Status.DIVERGED, "stopped_epoch"].dropna()
    table.attrs["rung_epochs"] = sorted(int(e) for e in stopped.unique())
    return table


def draw(path: Path, table: pd.DataFrame | None) -> bool:
    """The plot, from `group_curves`' table; False when there is nothing to draw."""
    if table is None or table.empty:
        return False
    from matplotlib.collections import LineCollection

    plt = figures.pyplot()
    metric = table.attrs.get("metric", "value")
    fig, ax = plt.subplots(figsize=(8, 5))
    survivors = sorted(table.loc[table["survived"], "group"].unique())
    faded = []
    for group, part in table.groupby("group", sort=True):
        part = part.sort_values("epoch")
        values = np.where(part["value"] > 0, part["value"], np.nan)
        if group in survivors[:MAX_COLOURED]:
            ax.plot(part["epoch"], values, linewidth=1.6, zorder=4, label=f"#{int(group)}")
        elif group in survivors:
            ax.plot(part["epoch"], values, linewidth=0.9, alpha=0.6, color="tab:blue", zorder=3)
        else:
            faded.append(np.column_stack([part["epoch"].to_numpy(float), values]))
    if faded:   # one artist for every pruned group: hundreds of lines draw in one call
        ax.add_collection(LineCollection(faded, colors="0.55", alpha=0.25, linewidths=0.8,
                                         zorder=1))
        ax.autoscale_view()
    for epoch in table.attrs.get("rung_epochs", []):
        ax.axvline(epoch, color="0.3", linestyle="--", linewidth=0.7, zorder=2)
    ax.set_yscale("log" if metric.endswith("loss") or metric.endswith("mse") else "linear")
    ax.set_xlabel("epoch (dashed: rungs)")
    ax.set_ylabel(f"{metric} (mean across seeds)")
    pruned = table.loc[~table["survived"], "group"].nunique()
    best = f", the best {MAX_COLOURED} in colour" if len(survivors) > MAX_COLOURED else ""
    ax.set_title(f"Successive halving: {len(survivors)} groups reached the last rung{best}; "
                 f"{pruned} pruned (faded)", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    if survivors:
        ax.legend(title="rank", fontsize="small")
    return figures.write_png(fig, path)
