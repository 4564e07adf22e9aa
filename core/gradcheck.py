"""Gradient check by central differences.

Each parameter entry is perturbed for all K variants at once (variants are
independent), so a check costs ``2 * (number of entries per variant)`` forward passes.
"""
from __future__ import annotations

import numpy as np

from .losses import check_output_loss, loss_value, output_delta
from .network import MLP, Params, backward, forward


def analytic_gradients(mlp: MLP, params: Params, X, Y, loss: str) -> Params:
    """Backprop gradients of ``loss`` (per variant) w.r.t. every parameter."""
    check_output_loss(mlp.output_activation, loss)
    out, cache = forward(mlp, params, X)                          # (K, n, n_out)
    dZ = output_delta(loss, mlp.output_activation, out, np.asarray(Y, out.dtype),
                      np.empty_like(out))
    return backward(mlp, params, cache, dZ)


def numerical_gradients(mlp: MLP, params: Params, X, Y, loss: str, h: float = 1e-5) -> Params:
    """Central-difference gradients ``(L(w + h) - L(w - h)) / 2h``, same shapes as params."""
    W = [w.copy() for w in params.W]
    b = None if params.b is None else [x.copy() for x in params.b]
    arrays = W + (b or [])
    grads = [np.zeros_like(a) for a in arrays]

    def f():
        return loss_value(loss, forward(mlp, Params(tuple(W), None if b is None else tuple(b)), X)[0], Y)

    for a, g in zip(arrays, grads):
        for idx in np.ndindex(*a.shape[1:]):
            sl = (slice(None),) + idx                            # all K variants at once
            orig = a[sl].copy()
            a[sl] = orig + h
            up = f()
            a[sl] = orig - h
            down = f()
            a[sl] = orig
            g[sl] = (up - down) / (2 * h)                         # (K,)
    n_w = len(W)
    return Params(tuple(grads[:n_w]), None if b is None else tuple(grads[n_w:]))


def check_gradients(mlp: MLP, params: Params, X, Y, loss: str, h: float = 1e-5) -> float:
    """Largest relative error ``|a - n| / (|a| + |n|)`` (norms per variant and array).

    Returns
    -------
    float
        The maximum over variants and parameter arrays; about 1e-9 for a correct
        float64 gradient, and of order 1 for a wrong one.
    """
    ana = analytic_gradients(mlp, params, X, Y, loss)
    num = numerical_gradients(mlp, params, X, Y, loss, h)
    worst = 0.0
    for a, n in zip(ana.W + (ana.b or ()), num.W + (num.b or ())):
        a2, n2 = a.reshape(len(a), -1), n.reshape(len(n), -1)     # (K, entries)
        diff = np.linalg.norm(a2 - n2, axis=1)
        scale = np.linalg.norm(a2, axis=1) + np.linalg.norm(n2, axis=1)
        worst = max(worst, float(np.max(diff / np.maximum(scale, 1e-300))))
    return worst
