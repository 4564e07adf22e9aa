"""Backprop gradients agree with central differences for every supported pair."""
import itertools

import numpy as np
import pytest

import core
from core.activations import HIDDEN_ACTIVATIONS
from core.network import BROADCAST_MAX_N

# hidden layouts: 1 to 3 layers, including one-wide layers (the broadcast code paths)
HIDDEN = {1: (4,), 2: (3, 1), 3: (1, 4, 2)}
HIDDEN_ACTS = sorted(HIDDEN_ACTIVATIONS)


def _problem(output_activation, loss, hidden, bias, n, seed):
    rng = np.random.default_rng(seed)
    n_out = 3 if output_activation == "softmax" else 2
    mlp = core.MLP(3, hidden, n_out, activation=HIDDEN_ACTS[seed % len(HIDDEN_ACTS)],
                   output_activation=output_activation, bias=bias)
    params = core.init_params(mlp, "xavier_normal", [seed, seed + 1])      # K = 2
    if bias:   # non-zero biases, so their gradients are exercised
        params = core.Params(params.W, tuple(b + rng.normal(0, 0.3, b.shape) for b in params.b))
    X = rng.normal(size=(n, 3))
    while _min_abs_preactivation(mlp, params, X) < 1e-4:   # no kink within reach of h = 1e-5
        X = rng.normal(size=(n, 3))
    if loss == "cross_entropy":
        Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    else:
        Y = rng.uniform(0.1, 0.9, (n, n_out))
    return mlp, params, X, Y


def _min_abs_preactivation(mlp, params, X):
    """Smallest non-zero |Z| over hidden units (only relu-like kinks matter), by plain NumPy.

    Exact zeros come from units fed only by dead units (no bias): no perturbation of size h
    moves them off zero unless an upstream |Z| is also small, which this checks.
    """
    if mlp.activation not in ("relu", "leaky_relu"):
        return np.inf
    act = core.ACTIVATIONS[mlp.activation].fn
    A, smallest = np.broadcast_to(X, (len(params.W[0]),) + X.shape), np.inf
    for l, W in enumerate(params.W[:-1]):
        Z = A @ W + (params.b[l] if params.b is not None else 0)     # (K, n, h)
        nonzero = np.abs(Z)[Z != 0]
        smallest = min(smallest, float(nonzero.min(initial=np.inf)))
        A = act(Z)
    return smallest


CASES = [(a, l, depth, bias) for (a, l) in sorted(core.SUPPORTED_PAIRS)
         for depth, bias in itertools.product((1, 2, 3), (False, True))]


@pytest.mark.parametrize("output_activation,loss,depth,bias", CASES)
def test_gradients_match_central_differences(output_activation, loss, depth, bias):
    mlp, params, X, Y = _problem(output_activation, loss, HIDDEN[depth], bias, n=7,
                                 seed=len(CASES) and CASES.index((output_activation, loss, depth, bias)))
    err = core.check_gradients(mlp, params, X, Y, loss)
    assert err < 1e-6, (mlp, loss, err)


@pytest.mark.parametrize("output_activation,loss", [("sigmoid", "half_sse"), ("softmax", "cross_entropy"),
                                                    ("identity", "mse"), ("sigmoid", "bce")])
def test_gradients_match_on_the_large_batch_code_path(output_activation, loss):
    mlp, params, X, Y = _problem(output_activation, loss, (5, 1, 3), True, n=BROADCAST_MAX_N + 9, seed=3)
    assert mlp.activation == "sigmoid"          # smooth: a larger step suits a loss summed over 2000+ samples
    assert core.check_gradients(mlp, params, X, Y, loss, h=1e-4) < 1e-6


def test_gradient_check_detects_a_wrong_gradient():
    mlp, params, X, Y = _problem("sigmoid", "half_sse", (4,), False, n=7, seed=0)
    ana = core.analytic_gradients(mlp, params, X, Y, "half_sse")
    num = core.numerical_gradients(mlp, params, X, Y, "half_sse")
    np.testing.assert_allclose(ana.W[0], num.W[0], rtol=1e-5, atol=1e-9)
    # the mse gradient is the half_sse one scaled by 2 / (n * n_out): a check must tell them apart
    wrong = core.numerical_gradients(mlp, params, X, Y, "mse")
    assert not np.allclose(ana.W[0], wrong.W[0], rtol=1e-3)


@pytest.mark.parametrize("output_activation,loss", [("softmax", "mse"), ("softmax", "half_sse"),
                                                    ("identity", "bce"), ("tanh", "bce"),
                                                    ("sigmoid", "cross_entropy"), ("softmax", "bce")])
def test_unsupported_output_loss_pairs_are_rejected_clearly(output_activation, loss):
    assert (output_activation, loss) not in core.SUPPORTED_PAIRS
    with pytest.raises(ValueError, match=f"{output_activation}.*{loss}.*supports"):
        core.check_output_loss(output_activation, loss)
    mlp = core.MLP(2, (3,), 2, output_activation=output_activation)
    params = core.init_params(mlp, "normal", 0)
    with pytest.raises(ValueError, match="cannot be trained"):
        core.train(mlp, params, np.zeros((4, 2)), np.zeros((4, 2)), loss=loss, epochs=1)


def test_unknown_names_and_softmax_hidden_layers_are_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        core.check_output_loss("sigmoid", "hinge")
    with pytest.raises(ValueError, match="unknown output activation"):
        core.check_output_loss("swish", "mse")
    with pytest.raises(ValueError, match="hidden activation"):
        core.MLP(2, (3,), 1, activation="softmax")
    with pytest.raises(ValueError, match="unknown initializer"):
        core.init_params(core.MLP(2, (3,), 1), "glorot", 0)


@pytest.mark.parametrize("n", [5, BROADCAST_MAX_N + 3])
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_of_sigmoid_networks_with_one_wide_layers(n, bias):
    """Sigmoid below a one-output layer takes a fused backward path; check it explicitly."""
    rng = np.random.default_rng(n)
    mlp = core.MLP(3, (4, 1, 2), 1, activation="sigmoid", output_activation="sigmoid", bias=bias)
    params = core.init_params(mlp, ["he_normal", "uniform"], [1, 2])
    X, Y = rng.normal(size=(n, 3)), rng.uniform(size=(n, 1))
    assert core.check_gradients(mlp, params, X, Y, "half_sse") < 1e-6
