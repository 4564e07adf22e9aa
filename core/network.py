"""Multilayer perceptrons over a population: forward and backward.

Every array carries the population axis K. Parameters live in one flat buffer laid
out by :class:`core.layout.Layout`; activations of layer l are stored ``(n, K, f)``
and used through ``(K, n, f)`` views, so the shared-input first layer is a single
matrix product ``X (n, n_in) @ W0 (n_in, K*h) -> (n, K*h)`` and every later layer a
batched product over K. A single network is simply K = 1.

Batched products whose inner or outer width is 1 (a one-output layer, for example)
are done as a broadcast multiply plus one matrix-vector product with a ones vector,
which costs two NumPy calls instead of K tiny BLAS calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from .layout import Layout

#: Up to this many samples, one-wide batched products use broadcast + ones-gemv;
#: above it, ``np.matmul`` over K (per-variant BLAS calls are then worth their overhead).
BROADCAST_MAX_N = 64


@dataclass(frozen=True)
class MLP:
    """Architecture shared by every variant of a population.

    ``sizes`` is ``(n_in, *hidden, n_out)``. ``activation`` is used in every hidden layer
    (an elementwise one), ``output_activation`` in the output layer.
    """

    n_in: int
    hidden: tuple[int, ...]
    n_out: int
    activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    bias: bool = False

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if min((self.n_in, self.n_out) + self.hidden) < 1:
            raise ValueError(f"layer sizes must be positive, got {self.sizes}")
        if self.activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden activation {self.activation!r} is not one of "
                             f"{sorted(HIDDEN_ACTIVATIONS)}")
        if self.output_activation not in ACTIVATIONS:
            raise ValueError(f"output activation {self.output_activation!r} is not one of "
                             f"{sorted(ACTIVATIONS)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_in, *self.hidden, self.n_out)


class Params(NamedTuple):
    """Population parameters: ``W[l]`` (K, sizes[l], sizes[l+1]); ``b[l]`` (K, 1, sizes[l+1]) or None."""

    W: tuple
    b: tuple | None


class Net:
    """Forward/backward kernel for K variants owning flat parameters and gradients.

    Parameters
    ----------
    mlp : MLP
    P : ndarray, shape (layout.size,)
        Flat parameters (see :class:`core.layout.Layout`); updated in place by optimizers.

    Attributes
    ----------
    P, G : ndarray, shape (layout.size,)
        Parameters and the gradient buffer :meth:`backward` fills.
    """

    def __init__(self, mlp: MLP, K: int, P):
        self.mlp, self.K, self.dtype = mlp, int(K), P.dtype
        self.layout = Layout(mlp.sizes, mlp.bias, K)
        if P.shape != (self.layout.size,):
            raise ValueError("flat parameter buffer does not fit the layout")
        self.P, self.G = P, np.empty_like(P)
        L = len(mlp.sizes) - 1
        self.acts = [ACTIVATIONS[mlp.activation]] * (L - 1) + [ACTIVATIONS[mlp.output_activation]]
        self._plans: dict[int, list] = {}
        self._x, self._negx = None, None

    def buffers(self, n: int) -> list[dict]:
        """Per-layer buffers and views for batches of n samples (built once per n).

        ``A`` activations, ``D`` deltas and ``S`` derivative scratch are stored
        ``(n, K, q)``; ``T`` is scratch for the broadcast products.
        """
        if n not in self._plans:
            self._plans[n] = self._plan(n)
        return self._plans[n]

    def _plan(self, n):
        K, dt, lay, sizes = self.K, self.dtype, self.layout, self.mlp.sizes
        ones = {m: np.ones(m, dt) for m in set(sizes) | {n}}
        plan = []
        for l, act in enumerate(self.acts):
            p, q = sizes[l], sizes[l + 1]
            e = dict(p=p, q=q, act=act,
                     A=np.empty((n, K, q), dt), D=np.empty((n, K, q), dt), S=np.empty((n, K, q), dt),
                     T=np.empty((n, K, p), dt), Tq=np.empty((n, K, q), dt),
                     W=lay.w_store(self.P, l), dW=lay.w_store(self.G, l),
                     b=lay.b_store(self.P, l) if self.mlp.bias else None,
                     db=lay.b_store(self.G, l).reshape(-1) if self.mlp.bias else None)
            small = n <= BROADCAST_MAX_N
            e["fwd"] = "x" if l == 0 else "q1" if q == 1 and small else "p1" if p == 1 else "mm"
            e["grad"] = "x" if l == 0 else "q1" if q == 1 and small else "p1" if p == 1 and small else "mm"
            e["back"] = "p1" if p == 1 and small else "mm"   # q == 1: see backward
            # sigmoid from -Z where -Z is free: (-X) @ W0, or a gemv with -1s
            e["neg"] = act.fn_of_neg is not None and e["fwd"] in ("x", "q1")
            e["ones_p"] = -ones[p] if e["neg"] else ones[p]
            e["ones_n"], e["ones_q"] = ones[n], ones[q]
            plan.append(e)
        return plan

    def _neg(self, X):
        if X is not self._x:
            self._x, self._negx = X, np.negative(X)
        return self._negx

    def forward(self, X):
        """Network outputs, a ``(K, n, n_out)`` view of an internal buffer.

        Parameters
        ----------
        X : ndarray, shape (n, n_in), contiguous, dtype of the population
        """
        n = X.shape[0]
        prev = None
        for e in self.buffers(n):
            Z, mode, neg = e["A"], e["fwd"], e["neg"]                       # Z (n, K, q)
            if mode == "x":
                np.matmul(self._neg(X) if neg else X, e["W"], out=Z.reshape(n, -1))  # (n,n_in) @ (n_in,K*q)
            elif mode == "q1":
                p, t = e["p"], e["T"]
                np.multiply(prev, e["W"][:, :, 0], out=t)                   # (n,K,p) * (K,p)
                np.matmul(t.reshape(-1, p), e["ones_p"], out=Z.reshape(-1))  # (n*K,p) @ (p,) -> (n*K,)
            elif mode == "p1":
                np.multiply(prev, e["W"][:, 0, :], out=Z)                   # (n,K,1) * (K,q)
            else:
                np.matmul(prev.transpose(1, 0, 2), e["W"], out=Z.transpose(1, 0, 2))  # (K,n,p) @ (K,p,q)
            if e["b"] is not None:
                (np.subtract if neg else np.add)(Z, e["b"], out=Z)          # +/- (K, q)
            (e["act"].fn_of_neg if neg else e["act"].fn)(Z, out=Z)
            prev = Z
        return prev.transpose(1, 0, 2)                                      # (K, n, n_out)

    def output_buffers(self, n):
        """``(dZ, tmp)``: the output delta buffer :meth:`backward` reads and a scratch,
        both ``(K, n, n_out)`` views."""
        e = self.buffers(n)[-1]
        return e["D"].transpose(1, 0, 2), e["S"].transpose(1, 0, 2)

    def backward(self, X):
        """Backpropagate the output delta (in ``output_buffers(n)[0]``) into ``self.G``.

        Call after :meth:`forward` on the same ``X``.
        """
        n, plan = X.shape[0], self.buffers(X.shape[0])
        for l in range(len(plan) - 1, -1, -1):
            e = plan[l]
            dZ = e["D"]                                                     # (n, K, q)
            # one-output layer: dZ repeated over the p inputs, (n, K, p), shared by both products
            R = np.repeat(dZ, e["p"], axis=2) if e["q"] == 1 and l > 0 else None
            if e["grad"] == "x":
                np.matmul(X.T, dZ.reshape(n, -1), out=e["dW"])              # (n_in,n) @ (n,K*q)
            elif R is not None and e["grad"] == "q1":
                np.multiply(plan[l - 1]["A"], R, out=e["T"])                # (n, K, p)
                np.matmul(e["ones_n"], e["T"].reshape(n, -1), out=e["dW"].reshape(-1))  # (n,) @ (n,K*p)
            else:
                _grad(e["grad"], plan[l - 1]["A"], dZ, e["dW"], e)
            if e["db"] is not None:
                np.matmul(e["ones_n"], dZ.reshape(n, -1), out=e["db"])      # (n,) @ (n,K*q)
            if l > 0:
                below = plan[l - 1]
                dA = below["D"]                                             # (n, K, p)
                if R is not None:
                    np.multiply(R, e["W"][:, :, 0], out=dA)                 # (n,K,p) * (K,p)
                else:
                    _back(e["back"], dZ, e["W"], dA, e)
                act = below["act"]
                if not act.identity_deriv:
                    dA *= act.deriv(below["A"], out=below["S"])
        return self.G


def _grad(mode, A, dZ, dW, e):
    """``dW[k] = A[:, k].T @ dZ[:, k]``: A (n, K, p), dZ (n, K, q) -> dW (K, p, q)."""
    n, K, p = A.shape
    q = dZ.shape[2]
    if mode == "p1":
        np.multiply(dZ, A, out=e["Tq"])                                     # (n,K,q) * (n,K,1)
        np.matmul(e["ones_n"], e["Tq"].reshape(n, -1), out=dW.reshape(-1))  # (n,) @ (n,K*q)
    else:
        np.matmul(np.swapaxes(A.transpose(1, 0, 2), -1, -2), dZ.transpose(1, 0, 2), out=dW)  # (K,p,n) @ (K,n,q)


def _back(mode, dZ, W, dA, e):
    """``dA[:, k] = dZ[:, k] @ W[k].T``: dZ (n, K, q), W (K, p, q) -> dA (n, K, p)."""
    if mode == "p1":
        q = dZ.shape[2]
        np.multiply(dZ, W[:, 0, :], out=e["Tq"])                            # (n,K,q) * (K,q)
        np.matmul(e["Tq"].reshape(-1, q), e["ones_q"], out=dA.reshape(-1))  # (n*K,q) @ (q,)
    else:
        np.matmul(dZ.transpose(1, 0, 2), np.swapaxes(W, -1, -2), out=dA.transpose(1, 0, 2))  # (K,n,q) @ (K,q,p)


def _check(mlp: MLP, params: Params):
    K = params.W[0].shape[0]
    sizes = mlp.sizes
    if len(params.W) != len(sizes) - 1 or (params.b is None) == mlp.bias:
        raise ValueError("params do not match the MLP (layer count or bias)")
    for l, (p, q) in enumerate(zip(sizes[:-1], sizes[1:])):
        if params.W[l].shape != (K, p, q):
            raise ValueError(f"W[{l}] has shape {params.W[l].shape}, expected {(K, p, q)}")
        if mlp.bias and params.b[l].shape != (K, 1, q):
            raise ValueError(f"b[{l}] has shape {params.b[l].shape}, expected {(K, 1, q)}")
    return K, params.W[0].dtype


def forward(mlp: MLP, params: Params, X):
    """Outputs of every variant on shared inputs.

    Parameters
    ----------
    X : ndarray, shape (n, n_in)

    Returns
    -------
    out : ndarray, shape (K, n, n_out)
    cache : opaque, for :func:`backward`
    """
    K, dtype = _check(mlp, params)
    net = Net(mlp, K, Layout(mlp.sizes, mlp.bias, K).pack(params.W, params.b, dtype))
    X = np.ascontiguousarray(X, dtype)
    with np.errstate(all="ignore"):
        out = net.forward(X)
    return out.copy(), (net, X)


def backward(mlp: MLP, params: Params, cache, dZ_out) -> Params:
    """Gradients from the output delta ``dZ_out = dL/dZ_out``, shape (K, n, n_out).

    Returns
    -------
    Params
        ``dW[l]`` (K, p, q) and ``db[l]`` (K, 1, q) (None without bias).
    """
    net, X = cache
    net.output_buffers(X.shape[0])[0][...] = dZ_out
    with np.errstate(all="ignore"):
        G = net.backward(X)
    return Params(*net.layout.unpack(G))


def predict(mlp: MLP, params: Params, X) -> np.ndarray:
    """Outputs, shape (K, n, n_out), for inputs X (n, n_in)."""
    return forward(mlp, params, X)[0]
