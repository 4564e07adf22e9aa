"""The plain chain rule, written out independently of core's fused tapes (test reference).

One matrix product per layer and direction, derivatives from the outputs, no shortcut
for small batches or one-wide layers: ``dZ[l-1] = (dZ[l] @ W[l].T) * act'(A[l-1])``.
Shapes: ``W[l]`` (K, p, q), ``b[l]`` (K, 1, q) or None, inputs X (n, n_in), targets Y
(n, n_out). Every array keeps the dtype of the parameters.
"""
import numpy as np

import core


def _sigmoid(Z):
    # exp(-Z) overflows to inf for Z below about -709.8 (float64): 1 / (1 + inf) is the exact 0
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-Z))


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


#: name -> (activation, derivative from the output A)
ACTS = {
    "sigmoid": (_sigmoid, lambda A: A * (1.0 - A)),
    "tanh": (np.tanh, lambda A: 1.0 - A * A),
    "relu": (lambda Z: np.maximum(Z, 0.0), lambda A: (A > 0).astype(A.dtype)),
    "leaky_relu": (lambda Z: np.where(Z > 0, Z, core.activations.LEAKY_SLOPE * Z),
                   lambda A: np.where(A > 0, 1.0, core.activations.LEAKY_SLOPE).astype(A.dtype)),
    "identity": (lambda Z: Z, lambda A: np.ones_like(A)),
    "softmax": (_softmax, None),
}


def forward(mlp, W, b, X):
    """Activations of every layer, ``A[0] = X`` broadcast to (K, n, n_in); ``A[-1]`` = outputs."""
    names = [mlp.activation] * len(mlp.hidden) + [mlp.output_activation]
    A = [np.broadcast_to(X, (len(W[0]),) + X.shape)]
    for l, name in enumerate(names):
        Z = A[-1] @ W[l] + (b[l] if b is not None else 0)
        A.append(ACTS[name][0](Z))
    return A


def output_delta(mlp, loss, out, Y):
    """``dL/dZ`` of the output layer: the loss derivative times the activation derivative."""
    n, o = out.shape[-2:]
    if (mlp.output_activation, loss) in (("sigmoid", "bce"), ("softmax", "cross_entropy")):
        # d/dZ of -[y log a + (1-y) log(1-a)] with a = sigmoid(Z) is a - y (likewise softmax)
        return (out - Y) / (n * o if loss == "bce" else n)
    dL_dout = (out - Y) * (1.0 if loss == "half_sse" else 2.0 / (n * o))
    return dL_dout * ACTS[mlp.output_activation][1](out)


def gradients(mlp, W, b, X, Y, loss):
    """``(dW, db)`` of ``loss`` per variant, same shapes as ``(W, b)`` (db None without bias)."""
    A = forward(mlp, W, b, X)
    names = [mlp.activation] * len(mlp.hidden) + [mlp.output_activation]
    dZ = output_delta(mlp, loss, A[-1], Y)
    dW, db = [None] * len(W), [None] * len(W)
    for l in range(len(W) - 1, -1, -1):
        dW[l] = np.swapaxes(A[l], -1, -2) @ dZ
        db[l] = dZ.sum(axis=-2, keepdims=True)
        if l:
            dZ = (dZ @ np.swapaxes(W[l], -1, -2)) * ACTS[names[l - 1]][1](A[l])
    return dW, (db if b is not None else None)


def train_sgd(mlp, W, b, X, Y, loss, lr, epochs, batch_size=None, data_seed=0):
    """Plain SGD as ``core.train`` documents it (mini-batch order from ``data_seed``)."""
    W, b = [w.copy() for w in W], (None if b is None else [x.copy() for x in b])
    n = len(X)
    bs = n if batch_size is None or batch_size >= n else batch_size
    rng = np.random.default_rng(data_seed)
    for _ in range(epochs):
        order = np.arange(n) if bs == n else rng.permutation(n)
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            dW, db = gradients(mlp, W, b, X[idx], Y[idx], loss)
            for l in range(len(W)):
                W[l] -= lr * dW[l]
                if b is not None:
                    b[l] -= lr * db[l]
    return W, b


def rounding_scale(mlp, W, b, X, Y, loss):
    """Per entry of ``(dW, db)``: the scale of floating-point error in those gradients.

    A gradient computed in floating point differs from the exact one by a small multiple
    of ``eps * rounding_scale``. The chain rule is run on magnitudes: a pre-activation
    rounds relative to the sum of its absolute terms ``F`` (large where +-800 weights
    cancel), which moves an activation by up to ``eps * F * |act'|``; sums round relative
    to their absolute terms; and a derivative near saturation carries an absolute error
    of order eps (``1 - A`` within a few ulps of zero, or ``W - A W``), hence ``|act'| + 1``.
    """
    A = forward(mlp, W, b, X)
    names = [mlp.activation] * len(mlp.hidden) + [mlp.output_activation]
    S = [np.abs(A[0])]                                            # magnitude of each A[l]
    for l, name in enumerate(names):
        F = S[-1] @ np.abs(W[l]) + (np.abs(b[l]) if b is not None else 0)
        d = np.abs(A[l + 1]) if name == "softmax" else np.abs(ACTS[name][1](A[l + 1]))
        S.append(np.abs(A[l + 1]) + F * d)
    out, n, o = A[-1], X.shape[0], A[-1].shape[-1]
    M = S[-1] + np.abs(Y)                                         # bounds |out - Y|
    if (mlp.output_activation, loss) in (("sigmoid", "bce"), ("softmax", "cross_entropy")):
        M = M / (n * o if loss == "bce" else n)
    else:
        M = M * (1.0 if loss == "half_sse" else 2.0 / (n * o))
        M = M * (np.abs(ACTS[mlp.output_activation][1](out)) + 1.0)
    sW, sb = [None] * len(W), [None] * len(W)
    for l in range(len(W) - 1, -1, -1):
        sW[l] = np.swapaxes(S[l], -1, -2) @ M
        sb[l] = M.sum(axis=-2, keepdims=True)
        if l:
            M = (M @ np.swapaxes(np.abs(W[l]), -1, -2)) * (np.abs(ACTS[names[l - 1]][1](A[l])) + 1.0)
    return sW, (sb if b is not None else None)
