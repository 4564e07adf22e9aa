"""What methods that rank on a validation metric share (halving, tpe, gp): the metrics they
may rank on and their checks. They never rank on the test set, so every variant needs
`data.validation`."""

from __future__ import annotations

from typing import Any, Optional

from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem, suggest
from sweeps.vocabulary import METRICS, direction

# The names a method may rank on: the validation metrics of `sweeps.vocabulary.METRICS`
# (their direction and task are read there, never copied here).
VAL_METRICS = tuple(name for name in METRICS if name.startswith("val_"))
# What a list of metrics (a Pareto front) may also hold: recorded by every variant when asked
# (`Pack.record`), never ranked on alone.
RECORDED = ("n_params",)
OBJECTIVES = VAL_METRICS + RECORDED


def objectives(metric: str | list[str], mode: Any) -> list[tuple[str, str]]:
    """(metric, mode) of each objective: one for a single metric, one per listed metric (the
    mode listed alongside, else the metric's own, `direction`; a validated config names only
    known metrics, an unknown one raises ValueError)."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    modes = mode if isinstance(mode, list) else [mode] * len(metrics)
    return [(m, mode_of(m, d)) for m, d in zip(metrics, modes)]


def ranked_on(metric: str | list[str]) -> str:
    """The one metric a sweep's outputs rank on (summary, configuration runs, `best`, plots):
    `metric` itself, or of a list (a Pareto front) the first validation metric listed (the
    front is marked beside the ranking, `sweeps.report.pareto`)."""
    if isinstance(metric, str):
        return metric
    return next((name for name in metric if name in VAL_METRICS), metric[0])


def objectives_problems(metric: str | list[str], mode: Any) -> list[Problem]:
    """`metric_problems` for one metric; for a list: two or more distinct known objectives,
    validation metrics among them, and a list of as many modes (or none)."""
    if isinstance(metric, str):
        if isinstance(mode, list):
            return [Problem(("search", "mode"), "one mode for one metric, not a list")]
        return metric_problems(metric, mode)
    at = ("search", "metric")
    if len(metric) < 2 or len(set(metric)) != len(metric):
        return [Problem(at, "list two or more distinct metrics (a Pareto front), or give one")]
    if isinstance(mode, str):
        return [Problem(("search", "mode"), f"one mode per metric: a list of {len(metric)}")]
    if isinstance(mode, list) and len(mode) != len(metric):
        return [Problem(("search", "mode"), f"{len(mode)} modes for {len(metric)} metrics")]
    problems = []
    for i, name in enumerate(metric):
        if name not in OBJECTIVES:
            problems.append(Problem(at + (i,), (
                f"unknown metric {name!r}{suggest(name, OBJECTIVES)} "
                f"(one of: {', '.join(OBJECTIVES)})")))
        elif isinstance(mode, list):
            problems += [Problem(("search", "mode", i), p.message)
                         for p in metric_problems(name, mode[i]) if name in VAL_METRICS]
    if not problems and not set(metric) & set(VAL_METRICS):
        problems.append(Problem(at, f"needs a validation metric ({', '.join(VAL_METRICS)})"))
    return problems


def mode_of(metric: str, mode: Optional[str]) -> str:
    """The better direction: `mode` when given, else the metric's own (`direction`: raises
    ValueError for a metric not in `sweeps.vocabulary.METRICS`)."""
    return mode or direction(metric)


def metric_problems(metric: str, mode: Optional[str], at: tuple = ("search", "metric"),
                    mode_at: tuple = ("search", "mode")) -> list[Problem]:
    """An unknown metric, or a mode against the metric's direction."""
    if metric not in VAL_METRICS:
        return [Problem(at, (f"unknown metric {metric!r}{suggest(metric, VAL_METRICS)} "
                             f"(one of: {', '.join(VAL_METRICS)})"))]
    own = direction(metric)
    if mode is not None and mode != own:
        better = "higher" if own == "max" else "lower"
        return [Problem(mode_at, (
            f"mode {mode} contradicts metric {metric}, where {better} is better "
            f"(use mode: {own}, or leave mode out)"))]
    return []


def validation_problems(config: Any, label: str) -> list[Problem]:
    """Every variant needs a validation split: the method never ranks on the test set."""
    why = f"{label} ranks variants on a validation metric, never on the test set"
    swept = config.search.parameters.get("data.validation")
    if isinstance(swept, list):
        return [Problem(BASE + ("data.validation", i), f"{why}: use a fraction, not null")
                for i, value in enumerate(swept) if value is None]
    if config.data.validation is None:
        return [Problem(("data", "validation"), f"{why}: set a validation split, e.g. "
                                                "data.validation: 0.2")]
    return []


def dataset_problems(metric: str | list[str], dataset: Any) -> list[Problem]:
    """A metric that needs another task than the data set's."""
    if not isinstance(metric, str):
        return [p for name in metric for p in dataset_problems(name, dataset)]
    known = METRICS[metric] if metric in VAL_METRICS else None
    if known is None or known.task is None or dataset.task == known.task:
        return []
    usable = [m for m in VAL_METRICS if METRICS[m].task in (None, dataset.task)]
    return [Problem(("search", "metric"), (
        f"{metric} needs a {known.task} data set, but {dataset.name!r} is "
        f"{dataset.task} (use {' or '.join(usable)})"))]
