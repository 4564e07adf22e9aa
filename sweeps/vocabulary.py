"""The words every part of sweeps shares, said once: a variant's status, a run's state and the
table of metrics (which way is better, which data sets have it).

Standard library only (a Ray worker imports it to label its results). The enums are `StrEnum`s:
a member is its own text, so what reaches MLflow, CSV files and JSON is unchanged ("ok",
"FINISHED"), and a status read back as plain text compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Collection, NamedTuple, Optional


class Status(StrEnum):
    """How a variant ended: a child run's ``status`` tag and the results tables' column."""

    OK = "ok"                   # trained to its last epoch (or its search's last rung)
    DIVERGED = "diverged"       # a non-finite loss stopped it (its metrics are NaN)
    PRUNED = "pruned"           # successive halving stopped it at an earlier rung


class RunState(StrEnum):
    """An MLflow run's state as sweeps sets it (MLflow's own names)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"       # a child: all of its data is in; a parent: the sweep completed
    KILLED = "KILLED"           # a parent stopped by Ctrl-C or SIGTERM
    FAILED = "FAILED"           # a parent some of whose packs failed


ENDED = (RunState.FINISHED, RunState.KILLED, RunState.FAILED)   # what a parent may end as


class Metric(NamedTuple):
    """A metric a variant logs."""

    name: str
    mode: str                   # the better direction: "min" or "max" (read it by `direction`)
    task: Optional[str]         # the data set task that has it (None: any)


# Every metric a variant logs, in the order results tables show them.
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("train_loss", "min", None), Metric("train_mse", "min", "regression"),
    Metric("train_accuracy", "max", "classification"),
    Metric("val_loss", "min", None), Metric("val_mse", "min", "regression"),
    Metric("val_accuracy", "max", "classification"),
    Metric("test_loss", "min", None), Metric("test_mse", "min", "regression"),
    Metric("test_accuracy", "max", "classification"),
    Metric("diverged_epoch", "min", None), Metric("train_seconds", "min", None),
    Metric("n_params", "min", None),        # recorded when a Pareto front asks for it
)}

# What ranks variants when neither --metric nor the sweep names one (`search.metric`, or the
# parent run's tag when no file is given): the first of these a sweep has (val_* needs a
# validation split; test_* a test split).
DEFAULT_RANKING = ("val_loss", "test_loss", "train_loss")
RANKING_HELP = ("Metric to rank by (default: the sweep's search.metric, of a list the first "
                "validation metric, as the file or else the sweep run says; without one the "
                f"first of {', '.join(DEFAULT_RANKING)} the sweep has; accuracy: higher is "
                "better).")


def default_ranking(logged: Collection[str]) -> str | None:
    """The first of `DEFAULT_RANKING` among the `logged` metric names (None: none of them)."""
    return next((metric for metric in DEFAULT_RANKING if metric in logged), None)


def direction(metric: str) -> str:
    """Which way `metric` is better: "min" or "max", its entry in METRICS (the one place a
    metric's direction is read: ranking, `best`, halving, tpe and gp, Pareto fronts, plots).

    Raises ValueError for a metric not in METRICS: its direction is not known, so nothing
    ranks on it (a config names only known metrics: `sweeps.methods.validation` reports
    others first).
    """
    known = METRICS.get(metric)
    if known is None:
        raise ValueError(f"no direction known for metric {metric!r}: not one of "
                         f"{', '.join(METRICS)}")
    return known.mode
