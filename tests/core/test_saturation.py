"""Saturated units get exact gradients: weights of +-800, pre-activations up to |Z| ~ 1e4.

Every code path (batches on both sides of ``BROADCAST_MAX_N``, one-wide layers, the
sigmoid-into-one-output shortcut, every fused output/loss pair, bias on and off, float32
and float64, mini-batches) is checked against the plain chain rule written out in
``tests/core/chain_rule.py`` and, where central differences are meaningful, against them.
Numerical warnings are errors here: a derivative must not overflow.
"""
import itertools
import warnings

import numpy as np
import pytest

import core
from core.activations import HIDDEN_ACTIVATIONS
from core.gradcheck import analytic_gradients, numerical_gradients
from core.network import BROADCAST_MAX_N
from tests.core import chain_rule

DTYPES = (np.float32, np.float64)
SIZES = (7, BROADCAST_MAX_N + 1)            # broadcast shortcuts / np.matmul over K
#: hidden widths -> n_out: a wide layer into one output, a narrow one (gathered spread),
#: and a one-wide hidden layer (products with inner and outer width 1)
ARCHS = {(6,): 1, (4, 3): 1, (5, 1, 4): 2}
PAIRS = sorted(core.SUPPORTED_PAIRS)
#: against the chain rule: ``1000 eps * chain_rule.rounding_scale`` (observed: below
#: 60 eps; a wrong formula or a NaN is off by order 1)
TOL = {d: 1e3 * np.finfo(d).eps for d in (np.float32, np.float64)}


def _extreme(rng, shape, dtype):
    """Weights: about a third +-800, the rest standard normal."""
    big = rng.random(shape) < 0.35
    return np.where(big, rng.choice([-800.0, 800.0], shape), rng.normal(size=shape)).astype(dtype)


def _targets(rng, loss, n, n_out, dtype):
    if loss == "cross_entropy":
        return np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)]
    return rng.uniform(0.1, 0.9, (n, n_out)).astype(dtype)


def _assert_within_rounding(got, want, scale, tol, what):
    """``|got - want| <= tol * scale`` entry by entry, and ``got`` finite."""
    assert np.isfinite(got).all(), f"{what}: non-finite gradient"
    got, want, scale = (np.asarray(a, np.float64) for a in (got, want, scale))
    excess = np.abs(got - want) - tol * scale
    assert (excess <= 0).all(), f"{what}: off by {np.abs(got - want).max()} at scale {scale.max()}"


def _assert_close(got, want, tol, what):
    """Per variant: ``||got - want|| <= tol * ||want||`` and both finite."""
    assert np.isfinite(got).all(), f"{what}: non-finite gradient"
    got, want = (np.asarray(a, np.float64).reshape(len(a), -1) for a in (got, want))
    err = np.linalg.norm(got - want, axis=1)
    scale = np.linalg.norm(want, axis=1)
    assert (err <= tol * scale + 1e-30).all(), f"{what}: relative error {err / scale}"


@pytest.mark.parametrize("dtype,bias,n,hidden", [
    (d, b, n, h) for d, b, n, h in itertools.product(DTYPES, (False, True), SIZES, ARCHS)])
def test_extreme_weights_give_the_plain_chain_rule_gradients(dtype, bias, n, hidden):
    rng = np.random.default_rng(n + 10 * len(hidden) + bias)
    X = rng.normal(0.0, 4.0, (n, 3)).astype(dtype)
    X[0] = (12.5, 0.0, 0.0)                   # with W[0][:, 0, :2] below: Z ~ -1e4 and +1e4
    checked = 0
    for act, (out_act, loss) in itertools.product(sorted(HIDDEN_ACTIVATIONS), PAIRS):
        n_out = 3 if out_act == "softmax" else ARCHS[hidden]
        mlp = core.MLP(3, hidden, n_out, act, out_act, bias=bias)
        W = tuple(_extreme(rng, (2, p, q), dtype) for p, q in zip(mlp.sizes[:-1], mlp.sizes[1:]))
        W[0][:, 0, :2] = (-800.0, 800.0)
        b = tuple(_extreme(rng, (2, 1, q), dtype) for q in mlp.sizes[1:]) if bias else None
        Y = _targets(rng, loss, n, n_out, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = analytic_gradients(mlp, core.Params(W, b), X, Y, loss)
        dW, db = chain_rule.gradients(mlp, W, b, X, Y, loss)
        sW, sb = chain_rule.rounding_scale(mlp, W, b, X, Y, loss)
        what = f"{act} -> {out_act} + {loss}"
        for l in range(len(W)):
            assert got.W[l].dtype == dtype
            _assert_within_rounding(got.W[l], dW[l], sW[l], TOL[dtype], f"{what}: dW[{l}]")
            if bias:
                _assert_within_rounding(got.b[l], db[l], sb[l], TOL[dtype], f"{what}: db[{l}]")
        checked += 1
    assert checked == len(HIDDEN_ACTIVATIONS) * len(PAIRS)


# Central differences: hidden unit 0 is saturated high (Z in [800, 1e4]) and unit 1 low
# (Z in [-1e4, -800]) on every sample, whatever the perturbation; the others are moderate,
# and so is the output, so that central differences are meaningful there.
SATURATING = {"sigmoid": (0, 1), "tanh": (0, 1), "relu": (1,), "leaky_relu": ()}  # never flat
SMOOTH_PAIRS = [(a, l) for a, l in PAIRS if a not in ("relu", "leaky_relu")]   # no kink at the output


def _saturated_problem(act, out_act, loss, bias, n, dtype, seed):
    rng = np.random.default_rng(seed)
    n_out = 3 if out_act == "softmax" else 1
    mlp = core.MLP(3, (6,), n_out, act, out_act, bias=bias)
    X = np.column_stack([rng.uniform(1.1, 12.5, n), rng.normal(size=(n, 2))])
    W0 = rng.normal(0.0, 0.5, (2, 3, 6))
    W0[:, :, :2] = 0.0
    W0[:, 0, 0], W0[:, 0, 1] = 800.0, -800.0
    W1 = rng.normal(0.0, 0.5, (2, 6, n_out))
    W1[:, :2] *= 1e-4                 # relu's unit 0, leaky_relu's both, are linear: |A| <= 1.25e4
    b = (rng.normal(0.0, 0.3, (2, 1, 6)), rng.normal(0.0, 0.3, (2, 1, n_out))) if bias else None
    params = core.Params((W0.astype(dtype), W1.astype(dtype)),
                         None if b is None else tuple(x.astype(dtype) for x in b))
    return mlp, params, X.astype(dtype), _targets(rng, loss, n, n_out, dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bias", (False, True))
@pytest.mark.parametrize("act", sorted(SATURATING))
def test_saturated_units_have_exactly_zero_gradients_and_the_rest_match_central_differences(
        act, bias, n):
    for seed, (out_act, loss) in enumerate(SMOOTH_PAIRS):
        mlp, params, X, Y = _saturated_problem(act, out_act, loss, bias, n, np.float64, seed)
        Z0 = X @ params.W[0] + (params.b[0] if bias else 0)
        assert (Z0[..., 0] >= 800).all() and (Z0[..., 1] <= -800).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ana = analytic_gradients(mlp, params, X, Y, loss)
            num = numerical_gradients(mlp, params, X, Y, loss, h=1e-7)   # h * |A| <= 1e-3
        what = f"{act} -> {out_act} + {loss}"
        dead = list(SATURATING[act])
        assert all(np.isfinite(a).all() for a in ana.W + (ana.b or ())), what
        # the saturated units' incoming weights and biases: exactly zero, both ways
        for g in (ana.W[0], num.W[0]) + ((ana.b[0], num.b[0]) if bias else ()):
            assert not g[:, :, dead].any(), what
        live = [j for j in range(6) if j not in dead]
        pairs = [(ana.W[0][:, :, live], num.W[0][:, :, live]), (ana.W[1], num.W[1])]
        if bias:
            pairs += [(ana.b[0][:, :, live], num.b[0][:, :, live]), (ana.b[1], num.b[1])]
        # one norm per variant over all the arrays: central differences carry an absolute
        # error (eps * loss / h) that small entries cannot be held to relatively
        ana_live, num_live = (np.concatenate([x.reshape(2, -1) for x in side], axis=1)
                              for side in zip(*pairs))                    # (K, entries)
        _assert_close(ana_live, num_live, 1e-5, what)
        # the same in float32 (too coarse for central differences): against float64
        mlp32, p32, X32, Y32 = _saturated_problem(act, out_act, loss, bias, n, np.float32, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ana32 = analytic_gradients(mlp32, p32, X32, Y32, loss)
        assert not ana32.W[0][:, :, dead].any(), what
        for a, a64 in zip(ana32.W + (ana32.b or ()), ana.W + (ana.b or ())):
            _assert_close(a.astype(np.float64), a64, 1e-3, what + " (float32)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", (None, BROADCAST_MAX_N + 20, 16))
def test_training_from_saturated_weights_follows_the_plain_chain_rule(dtype, batch_size,
                                                                      monkeypatch):
    """Full batch (np.matmul path); mini-batches of 2068 and 40 (both paths); of 16.

    One variant per chunk."""
    monkeypatch.setattr(core.loop, "CHUNK_ELEMENTS", 1)
    rng = np.random.default_rng(3)
    n = BROADCAST_MAX_N + 60
    X = rng.normal(0.0, 4.0, (n, 3)).astype(dtype)
    Y = (X[:, :1] * X[:, 1:2] > 0).astype(dtype)
    mlp = core.MLP(3, (6,), 1, "sigmoid", "sigmoid", bias=True)
    W = (_extreme(rng, (3, 3, 6), dtype), rng.normal(size=(3, 6, 1)).astype(dtype))
    b = (_extreme(rng, (3, 1, 6), dtype), np.zeros((3, 1, 1), dtype))
    epochs = 1 if batch_size == 16 else 3
    r = core.train(mlp, core.Params(W, b), X, Y, loss="bce", optimizer=core.OptimizerSpec(lr=0.5),
                   epochs=epochs, log_every=1, batch_size=batch_size, data_seed=4,
                   labels=Y[:, 0].astype(int))
    want_W, want_b = chain_rule.train_sgd(mlp, W, b, X, Y, "bce", 0.5, epochs, batch_size, 4)
    assert not r.diverged.any() and np.isfinite(r.loss).all()
    for got, want in zip(r.params.W + r.params.b, want_W + want_b):
        _assert_close(got, want, TOL[dtype], f"batch_size {batch_size}")
    assert not np.array_equal(r.params.W[1], W[1])                      # it did train
