"""Which settings explain the ranking metric: Optuna's importance evaluators on configuration
means (`sweeps summary --importance`, ``importance.png``), for a sweep of any method.

Each configuration (a row of `results.summarize`: a group of seeds) becomes one finished trial
whose value is the mean of the metric over its seeds (diverged seeds left out, as the summary
does; a configuration with no value is left out; under successive halving only those that
reached the last rung, which trained as long as each other). Its params are the swept settings but the one
aggregated over: a column of numbers is a float range (on a log scale when positive and
spanning two decades or more, as learning rates are), anything else a categorical over its
values as text. An evaluator of `EVALUATORS` apportions the metric among them (the importances
sum to 1): by default mean decrease in impurity of a random forest (seeded here, so the same
sweep gives the same figures; ~0.2 s for 48 configurations), or fANOVA (Optuna's default, the
variance decomposition of such a forest, ~70x as long: seconds, too slow for every sweep's
plot) or PED-ANOVA (fast; made for many trials).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sweeps.records import format_value

MIN_CONFIGURATIONS = 4      # fewer: no importances (a forest of 3 points says nothing)
FOREST_SEED = 0
# name -> how to make Optuna's evaluator (the names `sweeps summary --evaluator` takes)
EVALUATORS = {
    "mdi": lambda o: o.importance.MeanDecreaseImpurityImportanceEvaluator(seed=FOREST_SEED),
    "fanova": lambda o: o.importance.FanovaImportanceEvaluator(seed=FOREST_SEED),
    "ped_anova": lambda o: o.importance.PedAnovaImportanceEvaluator(),
}


def importances(summary: pd.DataFrame, metric: str | None = None,
                evaluator: str = "mdi") -> pd.DataFrame:
    """Columns ``setting``, ``importance`` (summing to 1), most important first; empty when
    fewer than MIN_CONFIGURATIONS configurations have a value or fewer than two settings vary.

    summary : `results.summarize` (its attrs name the settings and the metric).
    metric : default the summary's ranking metric.
    evaluator : a key of EVALUATORS.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown evaluator {evaluator!r} (one of: {', '.join(EVALUATORS)})")
    empty = pd.DataFrame({"setting": pd.Series(dtype=str), "importance": pd.Series(dtype=float)})
    metric = metric or summary.attrs.get("metric")
    column = f"{metric}_mean"
    if column not in summary.columns:
        raise ValueError(f"no metric {metric!r} in the summary")
    rows = summary[np.isfinite(summary[column].to_numpy(dtype=float))]
    if "rung" in rows.columns and len(rows):     # halving: configurations trained to the end
        rows = rows[rows["rung"] == rows["rung"].max()]
    settings = [c for c in summary.attrs.get("by", []) if rows[c].map(_text).nunique() > 1]
    if len(rows) < MIN_CONFIGURATIONS or len(settings) < 2:
        return empty

    distributions: dict[str, Any] = {}
    for name in settings:
        values = rows[name]
        if _numeric(values):
            low, high = float(values.min()), float(values.max())
            distributions[name] = FloatDistribution(low, high, log=low > 0 and high / low >= 100)
        else:
            distributions[name] = CategoricalDistribution(sorted(set(values.map(_text))))
    trials = [optuna.trial.create_trial(
        params={name: (float(row[name]) if isinstance(distributions[name], FloatDistribution)
                       else _text(row[name])) for name in settings},
        distributions=distributions, value=float(row[column]))
        for _, row in rows.iterrows()]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    found = optuna.importance.get_param_importances(
        study, evaluator=EVALUATORS[evaluator](optuna), normalize=True)
    return pd.DataFrame({"setting": list(found), "importance": list(found.values())})


def format_importances(table: pd.DataFrame, metric: str, evaluator: str = "mdi") -> str:
    """The table as text, a bar per setting."""
    if table.empty:
        return (f"importance of settings for {metric}: needs at least {MIN_CONFIGURATIONS} "
                "configurations with a value and two settings that vary")
    width = max(len(s) for s in table["setting"])
    lines = [f"importance of settings for {metric} ({evaluator} on configuration means):"]
    for setting, share in zip(table["setting"], table["importance"]):
        lines.append(f"  {setting:<{width}}  {share:6.1%}  {'#' * round(share * 40)}")
    return "\n".join(lines)


def _numeric(values: pd.Series) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               and math.isfinite(float(v)) for v in values)


def _text(value: Any) -> str:
    return format_value(value.item() if isinstance(value, np.generic) else value)
