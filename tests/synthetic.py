"""Small real sweeps (load_sweep on YAML written to a temp dir) and synthetic training results.

Training results are synthetic (seeded, decreasing curves; NaN from a divergence epoch on) so
tests of the MLflow layout and the tables are fast and can force divergence; they are real
`VariantResult` objects shaped exactly as `sweeps.execution.training.train_pack` returns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from sweeps.spec.sweep import Sweep, load_sweep
from sweeps.execution.training import VariantResult
from sweeps.vocabulary import Status
from tests.sweep_files import GRID, write_sweep_file

def load_small_sweep(directory: Path, name: str = "small", parameters: Mapping | None = None,
                     epochs: int = 1000, **options) -> Sweep:
    """A grid sweep file (article data by default, `GRID` unless `parameters` are given),
    loaded with the real `load_sweep`."""
    return load_sweep(write_sweep_file(directory, name, GRID if parameters is None else parameters,
                                       epochs=epochs, **options))


def synthetic_result(sweep: Sweep, variant, diverged_at: int | None = None) -> VariantResult:
    """A VariantResult with seeded curves; NaN from epoch `diverged_at` on when given."""
    s = variant.settings
    log_epochs = np.arange(0, s["train.epochs"], s["train.log_every"])
    rng = np.random.default_rng(int(variant.key[:8], 16))
    rate = 5 * s["train.lr"] * (1 + 0.2 * rng.random()) / s["train.epochs"]
    loss = 0.1 * np.exp(-rate * log_epochs) + 1e-3 * rng.random()       # (n_logs,)
    dataset = sweep.datasets[variant.data_key]
    _, Y_test = dataset.targets(s["model.output_activation"])
    predictions = Y_test + 0.01 * rng.standard_normal(Y_test.shape)     # (n_test, n_out)
    if dataset.task == "classification":
        second, tests = "train_accuracy", {"test_accuracy": 0.9 - rng.random() * 0.1}
        curve2 = np.minimum(1.0, 0.5 + log_epochs / s["train.epochs"])
    else:
        second, tests = "train_mse", {"test_mse": float(loss[-1] * 1.4)}
        curve2 = 2 * loss / 3
    metrics = {"train_loss": float(loss[-1] * 0.99), second: float(curve2[-1]),
               "test_loss": float(loss[-1] * 1.5), **tests, "train_seconds": 0.01}
    status = Status.OK
    if diverged_at is not None:
        status = Status.DIVERGED
        gone = log_epochs >= diverged_at
        loss, curve2 = np.where(gone, np.nan, loss), np.where(gone, np.nan, curve2)
        metrics = {k: (np.nan if k != "train_seconds" else v) for k, v in metrics.items()}
        metrics["diverged_epoch"] = float(diverged_at)
        predictions = np.full_like(predictions, np.nan)
    return VariantResult(key=variant.key, status=status, log_epochs=log_epochs,
                         curves={"train_loss": loss, second: curve2}, metrics=metrics,
                         predictions=predictions)


def log_sweep(tracker, sweep: Sweep, diverge: Mapping[int, int] | None = None,
              only: slice = slice(None)) -> None:
    """Log synthetic results for sweep.variants[only]; diverge: {variant index: epoch}."""
    diverge = diverge or {}
    for variant in sweep.variants[only]:
        tracker.log_variant(variant, synthetic_result(sweep, variant, diverge.get(variant.index)))
