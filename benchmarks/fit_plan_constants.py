"""Fit the rough cost constants of `sweeps.execution.plan` (SECONDS_PER_STEP, _MADD,
_ELEMENT) on this machine.

    .venv/bin/python benchmarks/fit_plan_constants.py

Times a few population shapes of core.train and fits the three constants by least squares on
relative error; paste the printed values into sweeps/execution/plan.py.
"""

from __future__ import annotations

import math
import time

import numpy as np

import core


def measure_speed(repeats: int = 2) -> tuple[float, float, float]:
    """(seconds per step, per multiply-add, per element) of core.train on this machine."""
    shapes = [  # K, rows, inputs, hidden, optimizer
        (1, 3, 3, 4, "sgd"), (60, 3, 3, 16, "sgd"), (60, 3, 3, 2, "sgd"), (8, 120, 4, 8, "adam"),
        (3, 32, 4, 8, "adam"), (64, 512, 32, 64, "sgd"), (16, 256, 8, 32, "momentum"),
        (32, 64, 2, 16, "momentum"), (4, 1000, 10, 8, "sgd"),
    ]
    features, seconds = [], []
    for K, n, n_in, hidden, kind in shapes:
        rng = np.random.default_rng(0)
        X, Y = rng.normal(size=(n, n_in)), rng.uniform(size=(n, 1))
        mlp = core.MLP(n_in=n_in, hidden=(hidden,), n_out=1)
        params = core.init_params(mlp, "xavier_normal", list(range(K)))
        epochs = int(min(3000, max(20, 2e6 / (K * n * hidden * n_in))))
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            core.train(mlp, params, X, Y, optimizer=core.OptimizerSpec(kind=kind, lr=0.01),
                       epochs=epochs, log_every=100)
            best = min(best, time.perf_counter() - start)
        weights = n_in * hidden + hidden
        features.append([epochs, K * epochs * 3 * n * weights,
                         K * epochs * (n * (hidden + 1) + weights)])
        seconds.append(best)
    A, b = np.array(features, dtype=float), np.array(seconds)
    coef, *_ = np.linalg.lstsq(A / b[:, None], np.ones_like(b), rcond=None)
    return tuple(float(max(c, 0.0)) for c in coef)


if __name__ == "__main__":
    step, madd, element = measure_speed()
    print(f"SECONDS_PER_STEP = {step:.2g}\nSECONDS_PER_MADD = {madd:.2g}\n"
          f"SECONDS_PER_ELEMENT = {element:.2g}")
