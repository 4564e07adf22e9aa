"""Small real sweeps (load_sweep on YAML written to a temp dir) and synthetic training results.

Training results are synthetic (seeded, decreasing curves; NaN from a divergence epoch on) so
tests of the MLflow layout and the tables are fast and can force divergence; they are real
`VariantResult` objects shaped exactly as `sweeps.training.train_pack` returns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from sweeps.sweep import Sweep, load_sweep
from sweeps.training import VariantResult
from tests.sweep_files import write_sweep_file

GRID = {"train.lr": [0.1, 0.5], "model.hidden": [2, 4], "seed": [0, 1, 2]}


def write_sweep(directory: Path, name: str = "small", parameters: Mapping | None = None,
                epochs: int = 1000, log_every: int = 100, source: str = "article",
                activation: str = "sigmoid", output_activation: str = "sigmoid",
                loss: str = "half_sse") -> Sweep:
    """A grid sweep file (article data by default), loaded with the real `load_sweep`."""
    parameters = GRID if parameters is None else parameters
    path = write_sweep_file(directory, name, parameters, epochs=epochs, log_every=log_every,
                            source=source, activation=activation,
                            output_activation=output_activation, loss=loss)
    return load_sweep(path)


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
    status = "ok"
    if diverged_at is not None:
        status = "diverged"
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
