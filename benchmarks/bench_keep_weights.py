"""Keep every variant's weights, or re-train the winner? The cost of each, measured.

Option A: every child run gets its final parameters as a small ``.npz`` artifact (written
through MLflow's artifact repository, as the tracker writes predictions.csv).
Option B: nothing extra is kept; `sweeps best` re-trains the chosen variant from its logged
params (`sweeps.execution.retrain.retrain`), once.

Measured on the card sweep (configs/card.yaml, 480 variants) and the same grid with 100 seeds
(4,800 variants): bytes on disk and seconds for A, seconds for B. Run:

    .venv/bin/python benchmarks/bench_keep_weights.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from sweeps.execution.retrain import retrain  # noqa: E402
from sweeps.spec.sweep import load_sweep  # noqa: E402


def disk_bytes(directory: Path) -> tuple[int, int]:
    """(sum of file sizes, bytes allocated on disk) under a directory."""
    size = used = 0
    for path in directory.rglob("*"):
        if path.is_file():
            stat = path.stat()
            size += stat.st_size
            used += stat.st_blocks * 512
    return size, used


def keep_all(sweep, n_variants: int) -> dict[str, float]:
    """Write one weights .npz per variant through MLflow's artifact repository."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    variants = [sweep.variants[i % len(sweep.variants)] for i in range(n_variants)]
    dataset = next(iter(sweep.datasets.values()))
    with tempfile.TemporaryDirectory(prefix="bench-npz-") as tmp:
        root, scratch = Path(tmp) / "artifacts", Path(tmp) / "scratch"
        scratch.mkdir()
        started = time.perf_counter()
        for i, variant in enumerate(variants):
            s = variant.settings
            mlp = core.MLP(n_in=dataset.X_train.shape[1], hidden=s["model.hidden"], n_out=1,
                           bias=s["model.bias"])
            params = core.init_params(mlp, s["model.init"], s["seed"])   # same shapes as trained
            path = scratch / "weights.npz"
            np.savez(path, **{f"W{l}": W[0] for l, W in enumerate(params.W)})
            repo = get_artifact_repository((root / f"run{i}" / "artifacts").as_uri())
            repo.log_artifact(str(path))
        seconds = time.perf_counter() - started
        size, used = disk_bytes(root)
    return {"seconds": seconds, "bytes": size, "disk_bytes": used}


def retrain_one(sweep) -> float:
    """Seconds to re-train the slowest-shaped variant (hidden 16) from its params."""
    variant = max(sweep.variants, key=lambda v: v.settings["model.hidden"])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        retrain(dict(variant.settings), base_dir=ROOT / "configs")
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    card = load_sweep(ROOT / "configs" / "card.yaml")
    again = retrain_one(card)
    print(f"re-train one card variant from its params: {again:.3f} s (once per `sweeps best`)")
    for n in (len(card.variants), 10 * len(card.variants)):
        kept = keep_all(card, n)
        print(f"{n:>5} variants, a weights .npz each: {kept['bytes'] / 1e6:.2f} MB of files "
              f"({kept['disk_bytes'] / 1e6:.1f} MB on disk), {kept['seconds']:.2f} s per sweep "
              f"= {kept['seconds'] / again:.1f}x one re-training")


if __name__ == "__main__":
    main()
