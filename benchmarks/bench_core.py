"""Speed of core's population training: against XLA and PyTorch, a Python loop and scikit-learn.

Part "engines" (engine_table.py): core before and after a change (``--before REV``, default
main) against JAX's XLA and PyTorch on the workloads of population_workloads.py, each ratio
printed, float64 and float32 (JAX and PyTorch from the optional ``bench`` extra; without JAX
the stored figures of xla_figures.json). Run it pinned to one core, as the stored figures were:
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
OPENBLAS_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/bench_core.py --part engines``.

Part "loop", the card's sweep: lr {0.01, 0.1, 0.5, 1.0} x hidden {2, 4, 8, 16} x init {uniform01,
xavier_normal, he_normal} x seeds 0-9 = 480 variants of the article's 3-h-1 sigmoid
network (no bias, half-SSE gradient, full batch), loss logged every 100 epochs.

1. loop:    the article's algorithm, one variant at a time, plain NumPy as the article
            writes it. "loop*" is the article's loop exactly (the loss computed every
            epoch; timed on every 4th variant); "loop" computes the loss only at the
            logged epochs, a faster baseline.
2. sklearn: MLPRegressor with the closest settings (differences printed), on a subset
            of variants; its variants/s is per variant, so it scales.
3. core:    ``core.train``, one population per hidden size (4 populations of 120).

Then the same grid on a 512 x 8 regression set for 2,000 epochs (loop vs core).
core and the loop alternate, one hidden size at a time, so that changes in machine load
hit both; wall and CPU (process) times are printed. BLAS is limited to one thread for all
methods (threadpoolctl), so the figures are single-core. Prints only; asserts nothing.

Run: ``.venv/bin/python benchmarks/bench_core.py`` (both parts, about 15 minutes; ``--quick``
for a 10x shorter loop part).
"""
from __future__ import annotations

import argparse
import os
import sys
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


def article_loop(X, Y, W1, W2, lr, epochs, log_every, loss_every_epoch=False):
    """The article's training loop, globals made arguments; returns logged MSEs and weights.

    The article computes the loss every epoch (and prints some); with
    ``loss_every_epoch=False`` it is computed only at the epochs that are recorded.
    """
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def sigmoid_derivative(x):
        return x * (1 - x)

    def calculate_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    losses = []
    for epoch in range(epochs):
        hidden_output = sigmoid(np.dot(X, W1))
        final_output = sigmoid(np.dot(hidden_output, W2))
        if loss_every_epoch or epoch % log_every == 0:
            loss = calculate_loss(Y, final_output)
            if epoch % log_every == 0:
                losses.append(loss)
        error = Y - final_output
        d_final_output = error * sigmoid_derivative(final_output)
        error_hidden_layer = d_final_output.dot(W2.T)
        d_hidden_layer = error_hidden_layer * sigmoid_derivative(hidden_output)
        W2 += hidden_output.T.dot(d_final_output) * lr
        W1 += X.T.dot(d_hidden_layer) * lr
    return np.array(losses), W1, W2


class Clock:
    """Wall and CPU (process) seconds, accumulated over start/stop pairs."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def loop_one_size(X, Y, h, epochs, curves, every=1, loss_every_epoch=False):
    """The loop over the variants of hidden size h (every ``every``-th one)."""
    g = grid(h)
    p = core.init_params(core.MLP(X.shape[1], (h,), 1), [v[1] for v in g], [v[2] for v in g])
    for k in range(0, len(g), every):
        curves[h, k] = article_loop(X, Y, p.W[0][k].copy(), p.W[1][k].copy(), g[k][0], epochs,
                                    LOG_EVERY, loss_every_epoch)[0]


def core_one_size(X, Y, h, epochs, curves, dtype=np.float64):
    """core's population of the 120 variants of hidden size h."""
    g = grid(h)
    mlp = core.MLP(X.shape[1], (h,), 1)
    p = core.init_params(mlp, [v[1] for v in g], [v[2] for v in g], dtype=dtype)
    r = core.train(mlp, p, X, Y, loss="half_sse", optimizer=core.OptimizerSpec(lr=[v[0] for v in g]),
                   epochs=epochs, log_every=LOG_EVERY)
    for k in range(len(g)):
        curves[h, k] = r.mse[k]


def run_interleaved(X, Y, epochs, written_every=0):
    """core and the loop, one hidden size after the other, so load changes hit both.

    ``written_every``: also time the article's loop as written (loss every epoch) on
    every n-th variant (0: not at all).
    """
    clocks = {k: Clock() for k in ("core", "loop", "written")}
    curves = {k: {} for k in clocks}
    for h in HIDDEN:
        with clocks["core"]:
            core_one_size(X, Y, h, epochs, curves["core"])
        with clocks["loop"]:
            loop_one_size(X, Y, h, epochs, curves["loop"])
        if written_every:
            with clocks["written"]:
                loop_one_size(X, Y, h, epochs, curves["written"], written_every, True)
    return clocks, curves


SKLEARN_DIFFS = ("identity output unit (MLPRegressor has no sigmoid output)", "biases on",
                 "scikit-learn's own Glorot-uniform init", "loss/gradient averaged over samples",
                 "loss recorded every epoch (loss_curve_)")


def run_sklearn(X, Y, epochs, n_variants):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    subset = [(lr, h) for h in HIDDEN for lr in LRS][:n_variants]
    clock = Clock()
    with clock:
        for lr, h in subset:
            m = MLPRegressor(hidden_layer_sizes=(h,), activation="logistic", solver="sgd", alpha=0.0,
                             batch_size=X.shape[0], learning_rate="constant", learning_rate_init=lr,
                             momentum=0.0, nesterovs_momentum=False, max_iter=epochs, shuffle=False,
                             tol=0.0, n_iter_no_change=epochs + 1, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                m.fit(X, Y.ravel())
    return clock, len(subset)


def agreement(a, b):
    """(median, max) relative difference of two runs' logged MSEs, and the share within 1e-9."""
    rel = []
    for key in a:
        x, y = a[key], b[key]
        ok = np.isfinite(x) & np.isfinite(y)
        rel.append(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300), initial=0))
    rel = np.array(rel)
    return float(np.median(rel)), float(rel.max()), float(np.mean(rel <= 1e-9))


def report(name, clock, n, note=""):
    """Print one method's times; return its (wall, cpu) variants per second."""
    print(f"  {name:<9}{clock.wall:9.2f} s wall {n / clock.wall:9.2f} variants/s |"
          f"{clock.cpu:9.2f} s cpu {n / clock.cpu:9.2f} variants/s" + (f"  {note}" if note else ""))
    return n / clock.wall, n / clock.cpu


def ratio(label, a, b, target):
    print(f"  {label:<26} = {a[0] / b[0]:7.1f}x wall, {a[1] / b[1]:7.1f}x cpu   (target >= {target}x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("engines", "loop", "all"), default="all")
    ap.add_argument("--before", default="main", help="git revision of the 'before' core ('' for none)")
    ap.add_argument("--repeats", type=int, default=3, help="engines: alternating repeats")
    ap.add_argument("--workloads", help="engines: comma-separated names (default all)")
    ap.add_argument("--record", action="store_true",
                    help="engines: store the JAX and PyTorch figures in xla_figures.json")
    ap.add_argument("--quick", action="store_true", help="10x fewer epochs, sklearn on 4 variants")
    ap.add_argument("--sklearn-variants", type=int, default=16)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    if args.part in ("engines", "all"):
        import engine_table
        engine_table.run(args.before or None, args.repeats,
                         args.workloads.split(",") if args.workloads else None, args.record)
    if args.part in ("loop", "all"):
        article_comparison(args)


def article_comparison(args):
    """The card's sweep: core against the article's loop and scikit-learn."""
    div = 10 if args.quick else 1
    n_var = len(HIDDEN) * len(LRS) * len(INITS) * len(SEEDS)
    print(f"numpy {np.__version__}, BLAS limited to 1 thread; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cpus (cpu = process time: excludes time other processes took from us)")

    X, Y = article_data()
    ep, every = 10000 // div, 4
    print(f"== article data (3 x 3), {n_var} variants, {ep} full-batch epochs, log every {LOG_EVERY}")
    clocks, curves = run_interleaved(X, Y, ep, written_every=every)
    sk_clock, n_sk = run_sklearn(X, Y, ep, 4 if args.quick else args.sklearn_variants)
    written = report("loop*", clocks["written"], n_var // every,
                     note=f"(the article's loop as written, loss every epoch; every {every}th variant)")
    loop = report("loop", clocks["loop"], n_var, note="(the same, loss only at the logged epochs)")
    sk = report("sklearn", sk_clock, n_sk, note=f"({n_sk} of the variants; rate per variant)")
    cr = report("core", clocks["core"], n_var, note="(4 populations of 120)")
    ratio("core / loop", cr, loop, 40)
    ratio("core / loop* (as written)", cr, written, 40)
    ratio("core / sklearn", cr, sk, 100)
    med, worst, _ = agreement(curves["loop"], curves["core"])
    print(f"  loop vs core logged MSE: median relative difference {med:.1e}, max {worst:.1e}")
    print("  sklearn differs: " + "; ".join(SKLEARN_DIFFS))

    X, Y = regression_data()
    ep = 2000 // div
    print(f"== regression set (512 x 8), {n_var} variants, {ep} full-batch epochs, log every {LOG_EVERY}")
    clocks, curves = run_interleaved(X, Y, ep)
    loop = report("loop", clocks["loop"], n_var, note="(loss only at the logged epochs)")
    cr = report("core", clocks["core"], n_var)
    ratio("core / loop", cr, loop, 1.3)
    med, worst, share = agreement(curves["loop"], curves["core"])
    print(f"  loop vs core logged MSE: median relative difference {med:.1e}; {share:.0%} of variants "
          f"within 1e-9 (max {worst:.1e}: variants whose large steps make training chaotic "
          "amplify last-bit rounding differences)")
    c32 = Clock()
    with c32:
        for h in HIDDEN:
            core_one_size(X, Y, h, ep, {}, dtype=np.float32)
    f32 = report("core f32", c32, n_var, note="(float32 on request)")
    ratio("core f32 / loop (float64)", f32, loop, "-")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    with np.errstate(all="ignore"):
        main()
