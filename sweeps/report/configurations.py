"""What a sweep's configuration runs hold, from the seed summary (`sweeps.tracking.groups`).

One `GroupRun` per summary row (a group of variants that differ only by seed): the row's
statistics as metrics, its seeds' mean curve and spread as histories, its settings as
params. Built from the same summary `sweeps summary` prints, so the UI and the terminal
agree number for number.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sweeps.records import format_value, without_seed
from sweeps.spec.search import short_names
from sweeps.tracking.groups import GroupRun
from sweeps.tracking.contract import (CURVES, GROUP_KEY, RANK, ROLE, SWEEP_RUN, TIED, RunRole,
                                      encode_param)
from sweeps.tracking.run_records import RunRecord
from sweeps.vocabulary import Status

NOTE = "mlflow.note.content"     # the run's description in the MLflow UI (markdown)


def group_runs(summary: pd.DataFrame, records: Sequence[RunRecord], sweep_run_id: str,
               describe: Any = None) -> list[GroupRun]:
    """The configuration runs of a seed summary (`results.summarize` + `ties.mark_ties`).

    records : the variants (histories attached) the summary was built from.
    describe : group key -> markdown for the run's description (a link to its seeds), or None.
    Empty when the summary is not over seeds (no ``group_key`` column).
    """
    if summary.empty or "group_key" not in summary:
        return []
    by_group: dict[str, list[RunRecord]] = {}
    for record in records:
        by_group.setdefault(record.group_key, []).append(record)
    swept = tuple(without_seed(records[0].swept)) if records else ()   # seeds: one configuration
    names = short_names(swept)
    means = [c.removesuffix("_mean") for c in summary.columns if c.endswith("_mean")]
    out = []
    for first, row in zip([True] + [False] * (len(summary) - 1), summary.to_dict("records")):
        key = row["group_key"]
        members = by_group.get(key, [])
        settings = members[0].settings if members else {}
        final_step = max((_last_step(r) for r in members), default=0)
        finals = {m: (row[f"{m}_mean"], row.get(f"{m}_std"), row.get(f"{m}_sem"))
                  for m in means}
        points = _curve_points([r for r in members if r.status != Status.DIVERGED], finals,
                               final_step)
        curves = sorted({k for k, _, _ in points})
        for m, (mean, std, sem) in finals.items():
            if m not in curves:
                points.append((m, _plain(mean), final_step))
                points.append((f"{m}_std", _plain(std), final_step))
            points.append((f"{m}_sem", _plain(sem), final_step))
        points += [(name, _plain(row.get(name)), final_step)
                   for name in ("n", "diverged", "rank", "p_vs_best")]
        tags = {ROLE: RunRole.GROUP, GROUP_KEY: key, SWEEP_RUN: sweep_run_id,
                RANK: str(int(row["rank"])), CURVES: ",".join(c for c in curves
                                                               if not c.endswith("_std"))}
        if not _nan(row.get("tied")):
            tags[TIED] = "best" if first else ("true" if row["tied"] else "false")
        if describe is not None:
            tags[NOTE] = describe(key)
        name = " ".join(f"{names[p]}={format_value(settings.get(p))}" for p in swept) or key
        out.append(GroupRun(group_key=key, name=name, tags=tags,
                            params={p: encode_param(settings.get(p)) for p in swept},
                            points=[p for p in points if not _nan(p[1])]))
    return out


def _last_step(record: RunRecord) -> int:
    steps = [int(s[-1]) for s, _ in (record.history or {}).values() if len(s)]
    return max(steps, default=record.stopped_epoch or 0)


def _curve_points(members: Sequence[RunRecord], finals: Mapping[str, tuple],
                  final_step: int) -> list[tuple[str, float, int]]:
    """(key, value, step): each curve's mean over the seeds and ``<key>_std`` (ddof 1) at
    every logged step; the last step's values are the summary's (the same numbers, summed
    in the summary's order)."""
    keys = sorted({k for r in members for k in (r.history or {})})
    points: list[tuple[str, float, int]] = []
    for key in keys:
        curves = [r.history[key] for r in members if key in (r.history or {})]
        steps = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s, _ in curves]))
        grid = np.full((len(curves), len(steps)), np.nan)          # (n_seeds, n_steps)
        for i, (s, v) in enumerate(curves):
            grid[i, np.searchsorted(steps, np.asarray(s, dtype=np.int64))] = v
        count = np.sum(~np.isnan(grid), axis=0)                      # (n_steps,)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(grid, axis=0) / np.where(count > 0, count, 1)
            spread = np.sqrt(np.nansum((grid - mean) ** 2, axis=0) / np.maximum(count - 1, 1))
        mean[count == 0] = np.nan
        spread[count < 2] = np.nan
        if key in finals and len(steps) and steps[-1] == final_step:
            mean[-1], spread[-1] = _plain(finals[key][0]), _plain(finals[key][1])
        points += [(key, float(v), int(s)) for s, v in zip(steps.tolist(), mean.tolist())]
        points += [(f"{key}_std", float(v), int(s))
                   for s, v in zip(steps.tolist(), spread.tolist())]
    return points


def _plain(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.nan
    return float(value)


def _nan(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
