"""Speed of core's population training against a Python loop and scikit-learn.

The sweep: lr {0.01, 0.1, 0.5, 1.0} x hidden {2, 4, 8, 16} x init {uniform01,
xavier_normal, he_normal} x seeds 0-9 = 480 variants of the article's 3-h-1 sigmoid
network (no bias, half-SSE gradient, full batch), loss logged every 100 epochs.

1. loop:    the article's algorithm, one variant at a time (plain NumPy, as written in
            the article, with the loss computed only at log epochs).
2. sklearn: MLPRegressor with the closest settings (differences printed), on a subset
            of variants; its variants/s is per variant, so it scales.
3. core:    ``core.train``, one population per hidden size (4 populations of 120).

Then the same grid on a 512 x 8 regression set for 2,000 epochs (loop vs core).
Run: ``.venv/bin/python benchmarks/bench_core.py`` (``--quick`` for a short run).
BLAS is limited to one thread for all methods (threadpoolctl), so the figures are
single-core. Prints only; asserts nothing.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import core

LRS = (0.01, 0.1, 0.5, 1.0)
HIDDEN = (2, 4, 8, 16)
INITS = ("uniform01", "xavier_normal", "he_normal")
SEEDS = range(10)
LOG_EVERY = 100


def article_data():
    X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    Y = np.array([[0.2], [0.5], [0.8]])
    return X, Y


def regression_data(n=512, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = 0.5 + 0.4 * np.tanh(X @ rng.standard_normal((d, 1)) / np.sqrt(d))
    return X, Y


def grid(h):
    """The 120 variants of one hidden size: (lr, init, seed)."""
    return [(lr, init, s) for lr in LRS for init in INITS for s in SEEDS]


def article_loop(X, Y, W1, W2, lr, epochs, log_every):
    """The article's training loop, globals made arguments; returns logged MSEs and weights."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def sigmoid_derivative(x):
        return x * (1 - x)

    losses = []
    for epoch in range(epochs):
        hidden_output = sigmoid(np.dot(X, W1))
        final_output = sigmoid(np.dot(hidden_output, W2))
        if epoch % log_every == 0:
            losses.append(np.mean((Y - final_output) ** 2))
        error = Y - final_output
        d_final_output = error * sigmoid_derivative(final_output)
        error_hidden_layer = d_final_output.dot(W2.T)
        d_hidden_layer = error_hidden_layer * sigmoid_derivative(hidden_output)
        W2 += hidden_output.T.dot(d_final_output) * lr
        W1 += X.T.dot(d_hidden_layer) * lr
    return np.array(losses), W1, W2


def run_loop(X, Y, epochs):
    t0, curves = time.perf_counter(), {}
    for h in HIDDEN:
        g = grid(h)
        p = core.init_params(core.MLP(X.shape[1], (h,), 1), [v[1] for v in g], [v[2] for v in g])
        for k, (lr, _, _) in enumerate(g):
            curves[h, k] = article_loop(X, Y, p.W[0][k].copy(), p.W[1][k].copy(), lr, epochs, LOG_EVERY)[0]
    return time.perf_counter() - t0, curves


def run_core(X, Y, epochs, dtype=np.float64):
    t0, curves = time.perf_counter(), {}
    for h in HIDDEN:
        g = grid(h)
        mlp = core.MLP(X.shape[1], (h,), 1)
        p = core.init_params(mlp, [v[1] for v in g], [v[2] for v in g], dtype=dtype)
        r = core.train(mlp, p, X, Y, loss="half_sse", optimizer=core.OptimizerSpec(lr=[v[0] for v in g]),
                       epochs=epochs, log_every=LOG_EVERY)
        for k in range(len(g)):
            curves[h, k] = r.mse[k]
    return time.perf_counter() - t0, curves


SKLEARN_DIFFS = ("identity output unit (MLPRegressor has no sigmoid output)", "biases on",
                 "scikit-learn's own Glorot-uniform init", "loss/gradient averaged over samples",
                 "loss recorded every epoch (loss_curve_)")


def run_sklearn(X, Y, epochs, n_variants):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    subset = [(lr, h) for h in HIDDEN for lr in LRS][:n_variants]
    t0 = time.perf_counter()
    for lr, h in subset:
        m = MLPRegressor(hidden_layer_sizes=(h,), activation="logistic", solver="sgd", alpha=0.0,
                         batch_size=X.shape[0], learning_rate="constant", learning_rate_init=lr,
                         momentum=0.0, nesterovs_momentum=False, max_iter=epochs, shuffle=False,
                         tol=0.0, n_iter_no_change=epochs + 1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(X, Y.ravel())
    return time.perf_counter() - t0, len(subset)


def agreement(a, b):
    """Largest relative difference between two runs' logged MSE curves (finite entries)."""
    worst = 0.0
    for key in a:
        x, y = a[key], b[key]
        ok = np.isfinite(x) & np.isfinite(y)
        worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300), initial=0)))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10x fewer epochs, sklearn on 4 variants")
    ap.add_argument("--sklearn-variants", type=int, default=16)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    div = 10 if args.quick else 1
    n_var = len(HIDDEN) * len(LRS) * len(INITS) * len(SEEDS)

    X, Y = article_data()
    ep = 10000 // div
    print(f"== article data (3 x 3), {n_var} variants, {ep} full-batch epochs, log every {LOG_EVERY}")
    t_core, c_core = run_core(X, Y, ep)
    t_loop, c_loop = run_loop(X, Y, ep)
    t_sk, n_sk = run_sklearn(X, Y, ep, 4 if args.quick else args.sklearn_variants)
    vps = {"loop": n_var / t_loop, "sklearn": n_sk / t_sk, "core": n_var / t_core}
    print(f"  loop    {t_loop:8.2f} s  {vps['loop']:9.2f} variants/s")
    print(f"  sklearn {t_sk:8.2f} s  {vps['sklearn']:9.2f} variants/s  ({n_sk} variants run, "
          f"rate per variant; full sweep would take ~{n_var / vps['sklearn']:.0f} s)")
    print(f"  core    {t_core:8.2f} s  {vps['core']:9.2f} variants/s")
    print(f"  core / loop    = {vps['core'] / vps['loop']:7.1f}x   (target >= 40x)")
    print(f"  core / sklearn = {vps['core'] / vps['sklearn']:7.1f}x   (target >= 100x)")
    print(f"  loop vs core logged MSE: max relative difference {agreement(c_loop, c_core):.1e}")
    print("  sklearn differs: " + "; ".join(SKLEARN_DIFFS))

    X, Y = regression_data()
    ep = 2000 // div
    print(f"== regression set (512 x 8), {n_var} variants, {ep} full-batch epochs, log every {LOG_EVERY}")
    t_core, c_core = run_core(X, Y, ep)
    t_loop, c_loop = run_loop(X, Y, ep)
    print(f"  loop    {t_loop:8.2f} s  {n_var / t_loop:9.2f} variants/s")
    print(f"  core    {t_core:8.2f} s  {n_var / t_core:9.2f} variants/s")
    print(f"  core / loop    = {t_loop / t_core:7.2f}x   (target >= 1.3x)")
    print(f"  loop vs core logged MSE: max relative difference {agreement(c_loop, c_core):.1e}")
    t32, _ = run_core(X, Y, ep, dtype=np.float32)
    print(f"  core float32 {t32:8.2f} s  {n_var / t32:9.2f} variants/s  ({t_loop / t32:.2f}x the float64 loop)")


if __name__ == "__main__":
    with np.errstate(all="ignore"):
        main()
