"""Numerics and building blocks: safe sigmoid/softmax/log-losses, derivatives, initializers, layout."""
import warnings

import numpy as np
import pytest

import core
from core.activations import ACTIVATIONS
from core.layout import Layout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_softmax_and_log_losses_stay_finite_without_warnings(dtype):
    Z = np.array([[[-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4]]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ACTIVATIONS["sigmoid"].fn(Z)
        sm = ACTIVATIONS["softmax"].fn(np.array([[[1e4, 1e4, -1e4]]], dtype))
        bce = core.loss_value("bce", np.array([[[0.0], [1.0]]], dtype), np.array([[1.0], [0.0]], dtype))
        ce = core.loss_value("cross_entropy", np.array([[[0.0, 1.0]]], dtype), np.array([[1.0, 0.0]], dtype))
    assert s.dtype == dtype and np.isfinite(s).all()
    assert s[0, 0, 0] == 0 and s[0, 0, 1] == 0 and s[0, 0, 3] == 0.5 and s[0, 0, -1] == 1
    np.testing.assert_allclose(s[0, 0, 2], np.exp(-30.0), rtol=1e-6)
    np.testing.assert_allclose(sm[0, 0], [0.5, 0.5, 0.0])
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(bce, [-np.log(eps)], rtol=1e-3)     # clipped at eps, not inf
    np.testing.assert_allclose(ce, [-np.log(eps)], rtol=1e-3)


@pytest.mark.parametrize("name", sorted(n for n, a in ACTIVATIONS.items() if a.elementwise))
def test_derivatives_from_the_output_match_finite_differences(name):
    act = ACTIVATIONS[name]
    Z = np.linspace(-3, 3, 41) + 0.013                 # avoids the kink at 0
    h = 1e-6
    numeric = (act.fn(Z + h) - act.fn(Z - h)) / (2 * h)
    np.testing.assert_allclose(act.deriv(act.fn(Z)), numeric, rtol=1e-6, atol=1e-9)


def test_in_place_activation_matches_out_of_place():
    Z = np.random.default_rng(0).normal(size=(2, 3, 4))
    for name, act in ACTIVATIONS.items():
        expected = act.fn(Z)
        buf = Z.copy()
        np.testing.assert_array_equal(act.fn(buf, out=buf), expected, err_msg=name)


def test_initializers_have_the_documented_scale():
    mlp = core.MLP(30, (40,), 1)
    seeds = list(range(50))
    fan_in, fan_out = 30, 40
    expected_std = {"normal": 1.0, "xavier_normal": np.sqrt(2 / (fan_in + fan_out)),
                    "he_normal": np.sqrt(2 / fan_in), "lecun_normal": np.sqrt(1 / fan_in),
                    "uniform": np.sqrt(1 / 3), "xavier_uniform": np.sqrt(6 / (fan_in + fan_out) / 3),
                    "he_uniform": np.sqrt(6 / fan_in / 3), "uniform01": np.sqrt(1 / 12)}
    assert set(expected_std) == set(core.INITIALIZERS)
    for name, std in expected_std.items():
        W = core.init_params(mlp, name, seeds).W[0]                      # (50, 30, 40)
        np.testing.assert_allclose(W.std(), std, rtol=0.03, err_msg=name)
    u = core.init_params(mlp, "uniform01", seeds).W[0]
    assert 0 <= u.min() and u.max() < 1
    p = core.init_params(core.MLP(3, (4,), 2, bias=True), ["he_normal", "uniform01"], [5, 5])
    assert p.b[0].shape == (2, 1, 4) and not p.b[0].any()
    assert not np.array_equal(p.W[0][0], p.W[0][1])       # same seed, different initializer
    with pytest.raises(ValueError, match="init has 2 entries but there are 3 seeds"):
        core.init_params(mlp, ["normal", "normal"], [1, 2, 3])


def test_layout_round_trips_and_selects_variants():
    rng = np.random.default_rng(1)
    W = (rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 4, 2)))
    b = (rng.normal(size=(5, 1, 4)), rng.normal(size=(5, 1, 2)))
    lay = Layout((3, 4, 2), True, 5)
    flat = lay.pack(W, b, np.float64)
    W2, b2 = lay.unpack(flat)
    assert all(np.array_equal(x, y) for x, y in zip(W + b, W2 + b2))
    np.testing.assert_array_equal(lay.w_store(flat, 0), W[0].transpose(1, 0, 2).reshape(3, 20))
    small = Layout((3, 4, 2), True, 2)
    W3, b3 = small.unpack(lay.select(flat, np.array([4, 1]), small))
    np.testing.assert_array_equal(W3[1], W[1][[4, 1]])
    np.testing.assert_array_equal(b3[0], b[0][[4, 1]])
    lr = lay.expand(np.arange(5.0), np.float64, weights_only=True)
    assert (lay.w_logical(lr, 1)[3] == 3).all() and not lay.b_logical(lr, 0).any()


def test_forward_backward_shapes_and_single_network_is_K_1():
    mlp = core.MLP(3, (4, 5), 2, bias=True)
    params = core.init_params(mlp, "xavier_normal", 0)
    X = np.ones((6, 3))
    out, cache = core.forward(mlp, params, X)
    assert out.shape == (1, 6, 2)
    grads = core.backward(mlp, params, cache, np.ones_like(out))
    assert [g.shape for g in grads.W] == [(1, 3, 4), (1, 4, 5), (1, 5, 2)]
    assert [g.shape for g in grads.b] == [(1, 1, 4), (1, 1, 5), (1, 1, 2)]
