"""What methods that rank on a validation metric share (halving, tpe, gp): the metrics they
may rank on and their checks. They never rank on the test set, so every variant needs
`data.validation`."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from sweeps.spec.parameters import BASE
from sweeps.spec.problems import Problem, suggest


class Metric(NamedTuple):
    """A validation metric a method may rank on."""

    mode: str                   # the better direction: min or max
    task: Optional[str]         # the data set task it needs (None: any)


VAL_METRICS = {
    "val_loss": Metric("min", None),
    "val_accuracy": Metric("max", "classification"),
    "val_mse": Metric("min", "regression"),
}


def mode_of(metric: str, mode: Optional[str]) -> str:
    """The better direction: `mode` when given, else the metric's own."""
    own = VAL_METRICS.get(metric)
    return mode or (own.mode if own else "min")


def metric_problems(metric: str, mode: Optional[str], at: tuple = ("search", "metric"),
                    mode_at: tuple = ("search", "mode")) -> list[Problem]:
    """An unknown metric, or a mode against the metric's direction."""
    known = VAL_METRICS.get(metric)
    if known is None:
        return [Problem(at, (f"unknown metric {metric!r}{suggest(metric, VAL_METRICS)} "
                             f"(one of: {', '.join(VAL_METRICS)})"))]
    if mode is not None and mode != known.mode:
        better = "higher" if known.mode == "max" else "lower"
        return [Problem(mode_at, (
            f"mode {mode} contradicts metric {metric}, where {better} is better "
            f"(use mode: {known.mode}, or leave mode out)"))]
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


def dataset_problems(metric: str, dataset: Any) -> list[Problem]:
    """A metric that needs another task than the data set's."""
    known = VAL_METRICS.get(metric)
    if known is None or known.task is None or dataset.task == known.task:
        return []
    usable = [m for m, spec in VAL_METRICS.items() if spec.task in (None, dataset.task)]
    return [Problem(("search", "metric"), (
        f"{metric} needs a {known.task} data set, but {dataset.name!r} is "
        f"{dataset.task} (use {' or '.join(usable)})"))]
