"""`sweeps verify`: re-train finished variants from their logged params alone and compare.

For each sampled FINISHED child run: `sweeps.execution.retrain.retrain` from its params (no
sweep file),
then its final metrics (all but ``train_seconds``) and its whole predictions.csv (inputs,
targets, predictions) against what MLflow holds. Per variant: the largest absolute and
relative difference and a verdict; the sweep's verdict is the worst one:

- ``bit-identical``: every number equal (NaN equals NaN);
- ``within 1e-9``: relative differences at most TOLERANCE (last bits, e.g. from another
  BLAS build or CPU than the sweep's; see `sweeps.execution.retrain`);
- ``different``: more than that, a number missing on one side, or params that no longer hash
  to the logged variant key.

The result goes to the parent run as ``verify.json`` and the tag ``sweep.verified``. The
parent's ``env.*`` params (`sweeps.execution.machine`) say whether the sweep ran on another
BLAS build or
CPU, so a difference can be put down to that rather than to the logged params.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sweeps.execution.retrain import RetrainError, Retrained, retrain
from sweeps.tracking.contract import predictions_table
from sweeps.tracking.run_records import Predictions, RunRecord

TOLERANCE = 1e-9
BIT_IDENTICAL = "bit-identical"
WITHIN = f"within {TOLERANCE:g}"
DIFFERENT = "different"
VERDICTS = (BIT_IDENTICAL, WITHIN, DIFFERENT)      # best to worst
IGNORED_METRICS = ("train_seconds",)               # wall time: never reproducible


@dataclass(frozen=True)
class Check:
    """One variant re-trained and compared.

    max_abs, max_rel : largest |ours - logged| and |ours - logged| / max(|ours|, |logged|)
        over its final metrics and predictions.csv (inf where one side lacks a number).
    worst : the quantity with the largest relative difference ("test_loss", "predictions.csv").
    """

    run_id: str
    name: str
    variant_key: str
    key_matches: bool
    max_abs: float
    max_rel: float
    worst: str
    verdict: str
    problem: str = ""


@dataclass(frozen=True)
class Verification:
    """What `verify` found: one Check per sampled variant and the sweep's verdict."""

    experiment: str
    parent_run_id: str
    checked: int
    finished: int
    verdict: str
    checks: list[Check] = field(default_factory=list)
    machine: list[str] = field(default_factory=list)   # env.* differences from the sweep
    seconds: float = 0.0
    reused: int = 0                  # checked variants copied from an earlier run
    numerics: dict[str, int] = field(default_factory=dict)  # other sweep.numerics -> count

    @property
    def ok(self) -> bool:
        return self.verdict != DIFFERENT

    def to_json(self) -> dict:
        out = asdict(self)
        out["tolerance"] = TOLERANCE
        out["checks"] = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in asdict(c).items()} for c in self.checks]
        return out

    def report(self) -> str:
        """The table per variant, then the verdict (and the machine note when it matters)."""
        lines = [format_checks(self.checks), "",
                 f"{self.verdict}: {self.checked} of {self.finished} finished variants re-trained "
                 f"from their logged params ({self.seconds:.1f} s)"]
        bad = [c for c in self.checks if c.verdict == DIFFERENT]
        if bad:
            lines.append(f"{len(bad)} differ beyond {TOLERANCE:g}: "
                         + ", ".join(c.name for c in bad[:10]) + (" ..." if len(bad) > 10 else ""))
        if self.reused:
            lines.append(f"{self.reused} of them reused (copied from earlier runs, tag "
                         f"sweep.reused_from), re-trained here like the others")
        for numerics, count in self.numerics.items():
            lines.append(f"{count} computed under other numerics than here: {numerics}")
        if self.machine and self.verdict != BIT_IDENTICAL:
            lines.append("different BLAS/CPU than the sweep: differences may come from that")
            lines += [f"  {line}" for line in self.machine]
        return "\n".join(lines)


def format_checks(checks: Sequence[Check]) -> str:
    if not checks:
        return "(no finished variants)"
    rows = [("variant", "max abs diff", "max rel diff", "worst", "key", "verdict")]
    for c in checks:
        rows.append((c.name, f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", c.worst or "-",
                     "ok" if c.key_matches else "CHANGED",
                     c.verdict + (f" ({c.problem})" if c.problem else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


# --------------------------------------------------------------------------------------------
# Comparing numbers

def differences(ours: np.ndarray, logged: np.ndarray) -> tuple[float, float]:
    """(max abs, max rel) difference; NaN equals NaN, NaN against a number is inf."""
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(logged, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return math.inf, math.inf
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    same = (a == b) | both_nan                 # equal infinities count as equal
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.where(same, 0.0, diff / np.where(scale > 0, scale, 1.0))
    diff[one_nan] = rel[one_nan] = math.inf
    if not len(diff):
        return 0.0, 0.0
    return float(np.max(diff)), float(np.max(rel))


def verdict_of(max_abs: float, max_rel: float, key_matches: bool = True) -> str:
    if not key_matches or not max_rel <= TOLERANCE:
        return DIFFERENT
    return BIT_IDENTICAL if max_abs == 0 else WITHIN


def compare(retrained: Retrained, record: RunRecord, logged_predictions: Predictions | None
            ) -> Check:
    """Compare a re-trained variant with its run record and logged predictions.csv."""
    found: list[tuple[float, float, str]] = []        # (max rel, max abs, what)
    ours = {k: v for k, v in retrained.result.metrics.items() if k not in IGNORED_METRICS}
    logged = {k: v for k, v in record.metrics.items() if k not in IGNORED_METRICS}
    for key in sorted(set(ours) | set(logged)):      # a key on one side only: NaN vs a number
        a, r = differences(np.array([ours.get(key, math.nan)]),
                           np.array([logged.get(key, math.nan)]))
        found.append((r, a, key))
    if logged_predictions is None:
        found.append((math.inf, math.inf, "predictions.csv (missing)"))
    else:
        columns, table = predictions_table(
            retrained.dataset, retrained.variant.settings["model.output_activation"],
            retrained.result.predictions)
        if list(logged_predictions.columns) != columns:
            found.append((math.inf, math.inf, "predictions.csv columns"))
        else:
            a, r = differences(table, logged_predictions.values)
            found.append((r, a, "predictions.csv"))
    max_rel, _, worst = max(found, default=(0.0, 0.0, ""))
    max_abs = max((a for _, a, _ in found), default=0.0)
    return Check(run_id=record.run_id, name=record.name or record.run_id,
                 variant_key=record.variant_key, key_matches=retrained.key_matches, max_abs=max_abs, max_rel=max_rel,
                 worst=worst if max_abs > 0 else "",
                 verdict=verdict_of(max_abs, max_rel, retrained.key_matches))


def check_record(tracking_uri: str, record: RunRecord, base_dir: Path
                 ) -> tuple[Check, Retrained | None]:
    """Re-train one run from its logged params and compare; params that cannot be re-trained
    are DIFFERENT."""
    from sweeps.tracking import readback

    logged = readback.fetch_settings(tracking_uri, [record.run_id])[record.run_id]
    logged_predictions = readback.fetch_predictions(tracking_uri, [record.run_id]).get(
        record.run_id)
    try:
        retrained = retrain(logged, base_dir=base_dir, name=record.name or "variant",
                            logged_key=record.variant_key, epochs=record.stopped_epoch)
    except RetrainError as error:
        return Check(run_id=record.run_id, name=record.name or record.run_id,
                     variant_key=record.variant_key, key_matches=False,
                     max_abs=math.inf, max_rel=math.inf, worst="", verdict=DIFFERENT,
                     problem=str(error)), None
    return compare(retrained, record, logged_predictions), retrained


# --------------------------------------------------------------------------------------------
# The command

def verify(experiment: str | None = None, tracking_uri: str | None = None, sweep: Any = None,
           *, sample: int | None = 20, seed: int = 0, parent_run_id: str | None = None,
           base_dir: str | Path | None = None, log: bool = True) -> Verification:
    """Re-train `sample` random FINISHED variants (None: all) of a sweep run and compare.

    experiment, sweep, parent_run_id : which sweep run, as for `sweeps.load_runs`.
    seed : the sample's random seed (same seed, same variants).
    base_dir : where CSV data sources are relative to (default: the sweep file's directory,
        else the working directory).
    log : write ``verify.json`` and the ``sweep.verified`` tag to the parent run.
    """
    from sweeps.execution.machine import machine_differences
    from sweeps.tracking import readback
    from sweeps.tracking.store import default_tracking_uri
    from sweeps.tracking.verified import mark_verified

    started = time.perf_counter()
    tracking_uri = tracking_uri or default_tracking_uri()
    experiment = readback.experiment_name(experiment, sweep)
    if base_dir is None:
        base_dir = Path(sweep.path).resolve().parent if sweep is not None else Path(".")
    read = readback.read_sweep(experiment, tracking_uri, sweep, parent_run_id=parent_run_id)
    records = read.records
    chosen = list(records) if sample is None or sample >= len(records) else \
        sorted(random.Random(seed).sample(list(records), sample), key=lambda r: r.index)
    checks = [check_record(tracking_uri, r, Path(base_dir))[0] for r in chosen]
    verdict = max((c.verdict for c in checks), key=VERDICTS.index, default=BIT_IDENTICAL)
    reused, numerics = _provenance(readback.fetch_tags(tracking_uri, [r.run_id for r in chosen]))
    outcome = Verification(
        experiment=experiment, parent_run_id=read.parent_run_id, checked=len(checks),
        finished=len(records), verdict=verdict, checks=checks,
        machine=machine_differences(dict(read.parent_params)),
        seconds=time.perf_counter() - started, reused=reused, numerics=numerics)
    if log:
        mark_verified(tracking_uri, read, verdict, json.dumps(outcome.to_json(), indent=2).encode())
    return outcome


def _provenance(tags_by_run: dict[str, dict[str, str]]) -> tuple[int, dict[str, int]]:
    """(how many of the runs are reused copies, {a ``sweep.numerics`` other than this
    process's: how many runs carry it}); a run without the tag counts as "(not recorded)"."""
    from sweeps.execution.machine import numerics_fingerprint
    from sweeps.tracking.contract import NUMERICS, REUSED_FROM

    here = numerics_fingerprint()
    reused, other = 0, {}
    for tags in tags_by_run.values():
        reused += REUSED_FROM in tags
        numerics = tags.get(NUMERICS, "(not recorded)")
        if numerics != here:
            other[numerics] = other.get(numerics, 0) + 1
    return reused, other
