"""The Pareto front of a sweep searched on several metrics (`search.metric` a list): which
configurations no other beats on every metric at once (`sweeps summary`, ``pareto.png``).

A configuration is a row of `results.summarize` (a group of seeds), its value on each
objective the mean over its seeds (``<metric>_mean``). It is Pareto-optimal when no other
configuration is at least as good on every objective and better on one. Configurations
without a value on some objective (all seeds diverged, a metric not recorded) are left out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def pareto_optimal(summary: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> pd.Series:
    """A boolean Series on the summary's index: True for Pareto-optimal configurations.

    objectives : (metric, "min" | "max") pairs; raises ValueError for a metric the summary
        does not hold.
    """
    columns = [f"{metric}_mean" for metric, _ in objectives]
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise ValueError(f"no {', '.join(c[:-5] for c in missing)} in the summary")
    signs = np.array([1.0 if mode == "min" else -1.0 for _, mode in objectives])
    values = summary[columns].to_numpy(dtype=float) * signs      # (n, objectives), lower wins
    finite = np.isfinite(values).all(axis=1)
    optimal = np.zeros(len(summary), dtype=bool)
    candidates = values[finite]
    for i in np.flatnonzero(finite):
        dominated = ((candidates <= values[i]).all(axis=1)
                     & (candidates < values[i]).any(axis=1)).any()
        optimal[i] = not dominated
    return pd.Series(optimal, index=summary.index, name="pareto")


def format_front(summary: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> str:
    """The Pareto-optimal configurations as text: their settings and objective means."""
    front = summary[pareto_optimal(summary, objectives)]
    names = ", ".join(f"{m} ({d})" for m, d in objectives)
    settings = list(summary.attrs.get("by", []))
    columns = settings + [f"{m}_mean" for m, _ in objectives]
    table = front[columns].rename(columns={f"{m}_mean": m for m, _ in objectives})
    return (f"Pareto-optimal configurations on {names}: {len(front)} of {len(summary)}\n"
            + table.to_string(index=False))
