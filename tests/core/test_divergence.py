"""Diverging variants are frozen and NaN'd; the rest of the population carries on untouched."""
import warnings

import numpy as np

import core

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
