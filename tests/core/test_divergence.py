"""Diverging variants are frozen and NaN'd; the rest of the population carries on untouched."""
import warnings

import numpy as np

import core
from core.gradcheck import analytic_gradients
from tests.core import chain_rule

X = np.random.default_rng(0).normal(size=(16, 2))
Y = X @ np.array([[1.5], [-2.0]]) + 0.3
MLP = core.MLP(2, (4,), 1, activation="tanh", output_activation="identity", bias=True)
LRS = np.array([0.01, 5.0, 0.03, 1e3])             # 5.0 and 1e3 blow up


def _train(lrs, seeds, params=None, **kw):
    params = params or core.init_params(MLP, "xavier_normal", seeds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # numpy warnings must not leak out
        return core.train(MLP, params, X, Y, loss="mse", optimizer=core.OptimizerSpec(lr=lrs),
                          epochs=200, log_every=5, **kw)


def test_exploding_variants_are_frozen_and_others_unaffected():
    r = _train(LRS, [1, 2, 3, 4])
    assert list(r.diverged) == [False, True, False, True]
    for k in (1, 3):
        e = r.diverged_epoch[k]
        i = list(r.log_epochs).index(e)
        assert 0 < e < 200
        assert np.isfinite(r.loss[k, :i]).all() and np.isnan(r.loss[k, i:]).all()
        assert np.isnan(r.mse[k, i:]).all()
        assert np.isnan(r.final_loss[k]) and np.isnan(r.final_mse[k])
        # detection rule: non-finite or above DIVERGENCE_FACTOR x the first logged loss
        assert r.loss[k, :i].max() <= core.DIVERGENCE_FACTOR * r.loss[k, 0]
    assert (r.diverged_epoch[[0, 2]] == -1).all()
    alone = _train(LRS[[0, 2]], [1, 3])
    np.testing.assert_allclose(r.loss[[0, 2]], alone.loss, rtol=1e-12, atol=0)
    np.testing.assert_allclose(r.final_loss[[0, 2]], alone.final_loss, rtol=1e-12, atol=0)


def test_frozen_variant_keeps_its_parameters_from_the_detection_epoch():
    r = _train(LRS, [1, 2, 3, 4])
    k = 1
    e = int(r.diverged_epoch[k])
    # re-train that variant alone up to the detection epoch: same parameters
    params = core.init_params(MLP, "xavier_normal", [2])
    upto = core.train(MLP, params, X, Y, loss="mse", optimizer=core.OptimizerSpec(lr=LRS[k]),
                      epochs=e, log_every=5)
    for a, b in zip(upto.params.W, r.params.W):
        np.testing.assert_allclose(a[0], b[k], rtol=1e-12)


def test_non_finite_initial_parameters_diverge_at_epoch_0():
    params = core.init_params(MLP, "xavier_normal", [1, 2])
    params.W[0][1, 0, 0] = np.nan
    r = _train(LRS[:2] * 0 + 0.01, None, params=params)
    assert list(r.diverged_epoch) == [-1, 0]
    assert np.isnan(r.loss[1]).all() and np.isfinite(r.loss[0]).all()
    assert list(r.diverged) == [False, True]


def test_saturated_sigmoid_units_do_not_make_a_variant_diverge():
    """Unscaled breast_cancer (features up to 4254): he_normal puts some hidden pre-activations
    below -709.8, where exp(-Z) overflows. Those units have gradient 0, not NaN, so no variant
    is declared diverged, and each trains as exact gradient descent does (issue 10)."""
    from sklearn.datasets import load_breast_cancer

    Xb, labels = load_breast_cancer(return_X_y=True)
    Yb = labels[:, None].astype(float)
    mlp = core.MLP(30, (16,), 1, activation="sigmoid", output_activation="sigmoid")
    params = core.init_params(mlp, "he_normal", range(5))
    assert (Xb @ params.W[0]).min() < -709.8                  # exp(-Z) overflows in float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = analytic_gradients(mlp, params, Xb, Yb, "bce")
    want, _ = chain_rule.gradients(mlp, params.W, None, Xb, Yb, "bce")
    scale, _ = chain_rule.rounding_scale(mlp, params.W, None, Xb, Yb, "bce")
    for g, w, s in zip(got.W, want, scale):
        assert (np.abs(g - w) <= 1e3 * np.finfo(float).eps * s).all()

    for lr, epochs in ((0.1, 200), (0.01, 500)):   # the sweep default (steps too large to
        r = core.train(mlp, params, Xb, Yb, loss="bce",  # learn much), and a gentler one
                       optimizer=core.OptimizerSpec(lr=lr), epochs=epochs, log_every=50,
                       labels=labels)
        assert not r.diverged.any(), f"lr {lr}: diverged at {r.diverged_epoch}"
        assert np.isfinite(r.loss).all() and np.isfinite(r.final_loss).all()
    assert (r.final_loss < r.loss[:, 0]).all()
    majority = max(labels.mean(), 1 - labels.mean())           # 0.627
    assert (r.final_accuracy >= majority).all()
    assert (r.final_accuracy > 0.85).sum() >= 3, r.final_accuracy     # observed 0.87-0.89
