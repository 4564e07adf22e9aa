"""`sweeps best`: the winning variant, re-trained from its logged params, as an MLflow model.

The winner: the best group by the ranking metric's mean over seeds (the metric the sweep
searched on, else the default; `sweeps.report.results.summarize`, the table `sweeps summary`
prints), then that group's best seed; or a variant named by key,
run id or run name. It is re-trained from its params alone (`sweeps.execution.retrain`; training is
deterministic) rather than every variant's weights being kept: that costs one variant's
training once, where an ``.npz`` per variant costs an artifact write on every child of every
sweep. The re-trained network must reproduce the logged run
(`sweeps.verification.compare`) before it is logged as a pyfunc model on that child run
(`sweeps.tracking.model`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sweeps.tracking.run_records import RunRecord
from sweeps.verification import DIFFERENT, Check, check_record


class NoWinner(LookupError):
    """No variant to pick: nothing finished, everything diverged, or no such variant."""


@dataclass(frozen=True)
class BestModel:
    """The logged winner: which run, its score, how well it reproduced, where the model is."""

    experiment: str
    run_id: str
    name: str
    variant_key: str
    metric: str
    value: float                 # the variant's own metric value
    group_mean: float            # its group's mean over seeds (NaN when picked by --variant)
    check: Check                 # re-training against the logged run
    model_uri: str
    registry_uri: str | None
    serve_command: str

    def report(self) -> str:
        lines = [f"best variant: {self.name} (run {self.run_id}, key {self.variant_key})",
                 f"  {self.metric} {self.value:.6g}"
                 + ("" if math.isnan(self.group_mean) else
                    f" (group mean over seeds {self.group_mean:.6g})"),
                 f"  re-trained from its logged params: {self.check.verdict} "
                 f"(max rel diff {self.check.max_rel:.3g})",
                 f"model: {self.model_uri}"]
        if self.registry_uri:
            lines.append(f"registered: {self.registry_uri}")
        lines += ["serve it:", f"  {self.serve_command}"]
        return "\n".join(lines)


def choose(records: Sequence[RunRecord], metric: str | None = None,
           variant: str | None = None) -> tuple[RunRecord, str, float]:
    """(record, metric, group mean) of the winner among run records.

    variant : a variant key, run id or run name instead of the ranking.
    """
    from sweeps.report.results import default_metric, frame_from_records, summarize
    from sweeps.vocabulary import Status, direction

    records = list(records)
    if not records:
        raise NoWinner("the sweep has no finished variants")
    frame = frame_from_records(records)
    metric = metric or default_metric(frame)
    if variant is not None:
        found = [r for r in records if variant in (r.run_id, r.name, r.variant_key)]
        if not found:
            raise NoWinner(f"no finished variant with key, run id or name {variant!r}")
        return found[0], metric, math.nan
    summary = summarize(frame, over="seed", metric=metric)
    mean = summary[f"{metric}_mean"].iloc[0]
    if mean is None or math.isnan(mean):
        raise NoWinner(f"no variant has a {metric} value (all diverged?)")
    rows = frame
    if "group_key" in summary.columns:
        rows = frame[frame["group_key"] == summary["group_key"].iloc[0]]
    rows = rows[(rows["status"] == Status.OK) & rows[metric].notna()]
    position = rows[metric].idxmax() if direction(metric) == "max" else rows[metric].idxmin()
    return records[position], metric, float(mean)


def best_model(experiment: str | None = None, tracking_uri: str | None = None,
               sweep: Any = None, *, metric: str | None = None, register: str | None = None,
               variant: str | None = None, parent_run_id: str | None = None,
               base_dir: str | Path | None = None) -> BestModel:
    """Pick the best variant of a sweep run, re-train it and log it as a pyfunc model.

    experiment, sweep, parent_run_id : which sweep run, as for `sweeps.load_runs`.
    metric : the ranking metric (default: the metric the sweep searched on, as its file or
        else its parent run says, `readback.SweepRead.ranking_metric`; without one the first
        of `sweeps.vocabulary.DEFAULT_RANKING` the sweep has; which way is better from
        `sweeps.vocabulary.direction`; under successive halving the groups of the last rung
        first).
    register : also register the model under this name in the model registry.
    variant : a variant key, run id or run name to log instead of the winner.
    base_dir : where a CSV data source is relative to (default: the sweep file's directory).
    Raises NoWinner, or RuntimeError when the re-trained network does not reproduce the run.
    """
    from sweeps.tracking import readback
    from sweeps.tracking.model import log_network, serve_command
    from sweeps.tracking.store import default_tracking_uri

    tracking_uri = tracking_uri or default_tracking_uri()
    experiment = readback.experiment_name(experiment, sweep)
    if base_dir is None:
        base_dir = Path(sweep.path).resolve().parent if sweep is not None else Path(".")
    read = readback.read_sweep(experiment, tracking_uri, sweep, parent_run_id=parent_run_id)
    record, metric, group_mean = choose(read.records, metric or read.ranking_metric, variant)
    check, retrained = check_record(tracking_uri, record, Path(base_dir))
    if retrained is None or check.verdict == DIFFERENT:
        raise RuntimeError(
            f"re-training {check.name} from its logged params does not reproduce the run "
            f"(max rel diff {check.max_rel:.3g} in {check.worst or '-'}"
            f"{'; its params no longer match its variant key' if not check.key_matches else ''}"
            f"{'; ' + check.problem if check.problem else ''}); see `sweeps verify`")
    logged = log_network(tracking_uri, record.run_id, retrained, register=register)
    return BestModel(
        experiment=experiment, run_id=record.run_id, name=check.name,
        variant_key=check.variant_key, metric=metric,
        value=float(record.metrics.get(metric, math.nan)), group_mean=group_mean,
        check=check, model_uri=logged.model_uri, registry_uri=logged.registry_uri,
        serve_command=serve_command(logged.model_uri, logged.tracking_uri))
