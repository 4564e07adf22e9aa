"""Multilayer perceptrons over a population: forward and backward.

Every array carries the population axis K. Parameters live in one flat buffer laid
out by :class:`core.layout.Layout`; activations of layer l are stored ``(n, K, f)``
and used through ``(K, n, f)`` views, so every layer is a batched product over K
(the first one ``X (n, n_in) @ W0 (K, n_in, h)``, its inputs shared) writing straight
into that storage. A single network is simply K = 1.

For small batches, products whose inner or outer width is 1 (a one-output layer,
for example) are a broadcast multiply plus an in-order sum: a few NumPy calls instead
of K tiny BLAS calls. Larger batches use ``np.matmul`` over K. A one-output layer on
``n * p >= ONE_OUTPUT_GEMM_MIN`` numbers per variant (and on any batch above
``BROADCAST_MAX_N``; n >= 2) is K gemms two wide, its weight column padded with a zero column
(``(n, p) @ (p, 2)``; gradient ``(p, n) @ (n, 2)``; the delta below ``(n, 2) @ (2, p)``,
exactly the products ``dZ W``): BLAS's one pass instead of passes over the ``(n, K, p)``
products, and never a gemv.

The rule: a variant's numbers are bit-identical whatever K and its place in the
population (tests/core/test_bit_identical.py). Every number of variant k is computed
by an elementwise ufunc, by a sum added in a fixed order (``_sum_leading``), or by a
BLAS gemm whose shape is the same for every variant and every K (``np.matmul`` over K,
with no vector operand: BLAS gemv results were measured to depend on the strides, float32
above all). No BLAS call spans several variants: OpenBLAS picks its kernel and its order
of summation from the whole call's shape, so one gemm over the population (``X @ W0`` for
all K at once) gave a variant other bits at another K: with inner sizes of 8 and more on
the Haswell and Zen kernels, and for large calls (2048 x 17 x 13 variants, inner 3) on
SkylakeX. What holds, tested on OpenBLAS 0.3.31's Haswell, Zen, SkylakeX and Sandybridge
kernels and NumPy's X86_V2, X86_V3 and X86_V4 loops (tests/core/test_kernels.py), is the
weaker assumption that one gemm shape gives one result: a variant's bits depend on the BLAS
kernel and the SIMD level (both recorded as ``env.*`` params of a sweep), never on its pack.
Not covered (per-variant gemvs, measured to move the last bits in float32): batch size 1
through two hidden layers both at least 2 wide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, deriv_ops, forward_ops
from .layout import Layout

#: Up to this many samples per batch (2048, the chunk size ``train`` uses), one-wide batched
#: products use broadcast + an in-order sum; above it, ``np.matmul`` over K (per-variant BLAS
#: calls then amortize their overhead).
BROADCAST_MAX_N = 2048

#: From this many numbers per sample and variant in the layer below (batch size x its width),
#: a one-output layer is a gemm two wide (its weight column beside a zero column) instead of the
#: broadcast + in-order sum: one gemm per variant costs less than the passes over the
#: (n, K, p) products there. Measured on bc_h4 .. bc_h64 and the card (benchmarks/engine_table).
ONE_OUTPUT_GEMM_MIN = 256


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
    """Forward/backward kernel for K variants, owning flat parameters and gradients.

    For each batch size n it allocates the buffers once and compiles the forward and
    backward passes into *tapes*: lists of ``(numpy_function, args)`` over those
    buffers, run by ``for f, a in tape: f(*a)``. Every call is decided once (shapes,
    code path, views), so an epoch costs a couple of dozen NumPy calls and nothing else,
    whatever K is.

    Parameters
    ----------
    mlp : MLP
    K : int
    P : ndarray, shape (layout.size,)
        Flat parameters (see :class:`core.layout.Layout`), updated in place by optimizers.

    Attributes
    ----------
    P, G : ndarray, shape (layout.size,)
        Parameters, and the gradients :meth:`backward` writes.
    """

    def __init__(self, mlp: MLP, K: int, P):
        self.mlp, self.K, self.dtype = mlp, int(K), P.dtype
        self.layout = Layout(mlp.sizes, mlp.bias, K)
        if P.shape != (self.layout.size,):
            raise ValueError("flat parameter buffer does not fit the layout")
        self.P, self.G = P, np.empty_like(P)
        L = len(mlp.sizes) - 1
        self.names = [mlp.activation] * (L - 1) + [mlp.output_activation]
        self.acts = [ACTIVATIONS[a] for a in self.names]
        self._plans: dict[int, _Plan] = {}

    def plan(self, n: int) -> "_Plan":
        """Buffers and tapes for batches of n samples (built on first use)."""
        pl = self._plans.get(n)
        if pl is None:
            pl = self._plans[n] = _Plan(self, n)
        return pl

    def load(self, X) -> "_Plan":
        """Copy inputs X (n, n_in) into the plan's input buffer, unless already there."""
        pl = self.plan(X.shape[0])
        if X is not pl.loaded:
            np.copyto(pl.X, X)
            np.negative(pl.X, out=pl.negX)
            pl.loaded = X
        return pl

    def forward(self, X):
        """Outputs for inputs X (n, n_in): a ``(K, n, n_out)`` view of an internal buffer.

        Call under ``np.errstate(over="ignore")``: sigmoid's ``exp(-Z)`` overflows to inf
        where the output is 0 (``1 / (1 + inf)``); nothing downstream multiplies that inf.
        """
        pl = self.load(X)
        for f, a in pl.fwd:
            f(*a)
        return pl.out

    def backward(self, X):
        """Gradients into ``self.G`` from the output delta in ``plan(n).dZ_out``.

        Call after :meth:`forward` on the same ``X``.
        """
        for f, a in self.load(X).bwd:
            f(*a)
        return self.G


class _Plan:
    """Buffers and tapes of one Net for batches of n samples.

    Activations ``A[l]``, deltas ``D[l]`` and derivative scratch ``S[l]`` are stored
    ``(n, K, q)``. ``out`` and ``dZ_out`` are ``(K, n, n_out)`` views of the last ones.
    """

    def __init__(self, net: Net, n: int):
        self.net, self.n, sizes = net, n, net.mlp.sizes
        self.new = lambda *shape: np.empty(shape, net.dtype)  # noqa: E731
        self.X, self.negX, self.loaded = self.new(n, sizes[0]), self.new(n, sizes[0]), None
        self.A = [self.new(n, net.K, q) for q in sizes[1:]]
        self.D = [self.new(n, net.K, q) for q in sizes[1:]]
        self.S = [self.new(n, net.K, q) for q in sizes[1:]]
        self.small = n <= BROADCAST_MAX_N
        self.AW = {}                          # l -> A[l-1] * W[l], kept from forward to backward
        # small batches: sigmoid layers feeding a one-output layer get their delta from AW
        # (see _backward), two calls instead of four
        # one-output layers done as a gemm two wide (see ONE_OUTPUT_GEMM_MIN): every layer
        # width 1 above the first on batches past BROADCAST_MAX_N (a gemv's bits depend on
        # its strides) and on large enough small ones
        self.padded = {l for l in range(1, len(sizes) - 1) if sizes[l + 1] == 1 and sizes[l] >= 2
                       and n >= 2 and (not self.small or n * sizes[l] >= ONE_OUTPUT_GEMM_MIN)}
        self.sigmoid_into_one = {l for l in range(len(sizes) - 2) if self.small and (l + 1) not in
                                 self.padded and net.names[l] == "sigmoid" and sizes[l + 2] == 1}
        self.fwd = self._forward()
        self.bwd = self._backward()
        self.out = self.A[-1].transpose(1, 0, 2)                            # (K, n, n_out)
        self.dZ_out = self.D[-1].transpose(1, 0, 2)
        self.stored = (self.A[-1], self.D[-1], self.S[-1])  # output, delta, scratch: (n, K, n_out)

    def _forward(self):
        net, n, K, A, new = self.net, self.n, self.net.K, self.A, self.new
        lay, P, sizes, fwd = net.layout, net.P, net.mlp.sizes, []
        for l, act in enumerate(net.acts):
            p, q, W = sizes[l], sizes[l + 1], lay.w_store(P, l)            # W (n_in, K*q) or (K, p, q)
            Z, prev = A[l], A[l - 1] if l else None                         # (n, K, q), (n, K, p)
            sigmoid = act.fn_of_neg is not None         # computes -Z where that is free
            if l == 0 and min(n, p, q) >= 2:          # K gemms of one shape
                fwd.append((np.matmul, (self.negX if sigmoid else self.X, lay.w_logical(P, 0),
                                        Z.transpose(1, 0, 2))))            # (n,n_in) @ (K,n_in,q)
                neg = sigmoid
            elif l == 0:                                # a size 1 (a gemv): broadcast + in-order sum
                T = new(p, n, K * q)
                Xt = (self.negX if sigmoid else self.X).T[:, :, None]      # (n_in, n, 1)
                fwd += [(np.multiply, (Xt, W[:, None, :], T))]             # * (n_in, 1, K*q)
                fwd += _sum_leading(T, Z.reshape(n, -1), n * q > 1)         # -> (n, K*q)
                neg = sigmoid
            elif l in self.padded:                      # one output: K gemms (n, p) @ (p, 2)
                W2, Z2 = np.zeros((K, p, 2), net.dtype), new(n, K, 2)     # column 1 stays 0
                fwd += [(np.copyto, (W2[:, :, :1], W)),
                        (np.matmul, (prev.transpose(1, 0, 2), W2, Z2.transpose(1, 0, 2))),
                        (np.copyto, (Z, Z2[:, :, :1]))]                    # (K,n,p) @ (K,p,2)
                neg = False
            elif q == 1 and self.small:                 # one output: broadcast + in-order sum over p
                T = new(p, n, K)
                self.AW[l] = T.transpose(1, 2, 0)                          # (n, K, p) view
                fwd += [(np.multiply, (prev.transpose(2, 0, 1), W[:, :, 0].T[:, None, :],
                                       T))]                                 # (p,n,K) * (p,1,K)
                fwd += _sum_leading(T, Z[:, :, 0], n > 1)                   # -> (n, K)
                neg = False
            elif p == 1:
                fwd.append((np.multiply, (prev, W[:, 0, :], Z)))           # (n,K,1) * (K,q)
                neg = False
            else:
                fwd.append((np.matmul, (prev.transpose(1, 0, 2), W,
                                        Z.transpose(1, 0, 2))))            # (K,n,p) @ (K,p,q)
                neg = False
            if net.mlp.bias:
                fwd.append((np.subtract if neg else np.add, (Z, lay.b_store(P, l), Z)))  # -/+ (K, q)
            fwd += forward_ops(net.names[l], Z, negated=neg)
        return fwd

    def _backward(self):
        net, n, K, A, D, S, new = self.net, self.n, self.net.K, self.A, self.D, self.S, self.new
        lay, P, G, sizes, small, bwd = net.layout, net.P, net.G, net.mlp.sizes, self.small, []
        for l in range(len(net.acts) - 1, -1, -1):
            p, q, dW, dZ = sizes[l], sizes[l + 1], lay.w_store(G, l), D[l]  # dZ (n, K, q)
            prev = A[l - 1] if l else None
            # weight gradient dW[k] = A[l-1][:, k].T @ dZ[:, k]
            if l == 0 and min(p, n, q) >= 2:          # K gemms of one shape
                bwd.append((np.matmul, (self.X.T, dZ.transpose(1, 0, 2),
                                        lay.w_logical(G, 0))))              # (n_in,n) @ (K,n,q)
            elif l == 0:                                # a size 1 (a gemv): broadcast + in-order sum
                T = new(n, p, K * q)
                bwd += [(np.multiply, (self.X[:, :, None], dZ.reshape(n, 1, -1), T))]
                bwd += _sum_leading(T, dW, p * q > 1)                       # -> (n_in, K*q)
            elif l in self.padded:                      # K gemms (p, n) @ (n, 2), column 1 zero
                D2, G2 = np.zeros((n, K, 2), net.dtype), new(K, p, 2)
                WT2 = np.zeros((K, 2, p), net.dtype)                        # row 1 stays 0
                bwd += [(np.copyto, (D2[:, :, :1], dZ)),
                        (np.matmul, (np.swapaxes(prev.transpose(1, 0, 2), -1, -2),
                                     D2.transpose(1, 0, 2), G2)),          # (K,p,n) @ (K,n,2)
                        (np.copyto, (dW, G2[:, :, :1]))]
            elif q == 1 and small:                      # dZ spread over the p inputs: R
                R = new(n, K, p)
                U = R if (l - 1) in self.sigmoid_into_one else new(n, K, p)  # R not needed again then
                bwd += [_spread(dZ, R), (np.multiply, (prev, R, U))]       # U = A[l-1] * R
                bwd += _sum_over_samples(U, dW[:, :, 0])               # -> (K, p)
            elif p == 1:
                T = new(n, K, q)
                bwd += [(np.multiply, (dZ, prev, T))]                       # (n,K,q) * (n,K,1)
                bwd += _sum_over_samples(T, dW[:, 0, :])               # -> (K, q)
            else:
                bwd.append((np.matmul, (np.swapaxes(prev.transpose(1, 0, 2), -1, -2),
                                        dZ.transpose(1, 0, 2), dW)))        # (K,p,n) @ (K,n,q)
            if net.mlp.bias:
                bwd += _sum_over_samples(dZ, lay.b_store(G, l))        # -> (K, q)
            if l == 0:
                break
            # delta of the layer below: dZ[l-1] = (dZ @ W.T) * act'(A[l-1])
            dA, W, below = D[l - 1], lay.w_store(P, l), net.names[l - 1]  # dA (n, K, p)
            if (l - 1) in self.sigmoid_into_one:
                # R W A (1 - A) = (A R) (W - A W), with U = A R from dW and A W from the forward:
                # finite numbers only, so a saturated unit (A = 0 or 1) gets exactly 0 (an
                # exp(-Z) kept from the forward would be inf there, and inf * 0 NaN). Its rounding
                # near A = 1 (about eps |W R|, absolute) is that of the article's A (1 - A).
                bwd += [(np.subtract, (W[:, :, 0], self.AW[l], dA)), (np.multiply, (dA, U, dA))]
                continue
            if l in self.padded:    # dZ W^T + 0 0: exactly the products dZ[n, k] W[k, j]
                bwd += [(np.copyto, (WT2[:, 0, :], W[:, :, 0])),
                        (np.matmul, (D2.transpose(1, 0, 2), WT2, dA.transpose(1, 0, 2)))]
            elif q == 1 and small:
                bwd.append((np.multiply, (R, W[:, :, 0], dA)))              # (n,K,p) * (K,p)
            elif p == 1:                                # dZ (n,K,q) * W (K,q), summed over q in order
                T = new(q, n, K)
                bwd += [(np.multiply, (dZ, W[:, 0, :], T.transpose(1, 2, 0)))]
                bwd += _sum_leading(T, dA[:, :, 0], n > 1)                  # -> (n, K)
            else:
                bwd.append((np.matmul, (dZ.transpose(1, 0, 2), np.swapaxes(W, -1, -2),
                                        dA.transpose(1, 0, 2))))            # (K,n,q) @ (K,q,p)
            if not net.acts[l - 1].identity_deriv:
                bwd += deriv_ops(below, A[l - 1], S[l - 1]) + [(np.multiply, (dA, S[l - 1], dA))]
        return bwd


def _sum_leading(src, out, wide: bool) -> list:
    """Tape entries writing the sum of ``src`` (m, ...) over its first axis into ``out`` (...).

    The m slabs are added in order, element by element, so each variant's sum is the same
    whatever K. ``np.add.reduce`` does that when a slab has several elements, but sums
    one-element slabs pairwise, which differs from 8 terms on; ``np.add.accumulate`` is in
    order for any shape. ``wide``: a slab has several elements even when K = 1 (the
    caller knows from the shapes other than K); then, or below 8 terms (where NumPy's
    pairwise sum is sequential), the cheaper reduce is used.
    """
    if wide or src.shape[0] < 8:
        return [(np.add.reduce, (src, 0, None, out))]
    acc = np.empty_like(src)
    return [(np.add.accumulate, (src, 0, None, acc)), (np.copyto, (out, acc[-1]))]


def _sum_over_samples(src, out) -> list:
    """Tape entries: ``out`` (K, w) = sum of ``src`` (n, K, w) over samples, in sample order."""
    return _sum_leading(src, out, src.shape[2] > 1)


def _spread(d, R):
    """Tape entry copying ``d`` (n, K, 1) into every column of ``R`` (n, K, p)."""
    n, K, p = R.shape
    if p <= 4:   # a gather beats broadcasting loops p elements long
        idx = np.repeat(np.arange(n * K), p)
        return d.reshape(-1).take, (idx, None, R.reshape(-1), "clip")
    return np.copyto, (R, d)


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
    # sigmoid's exp overflows where its output is exactly 0; parameters of diverged variants
    # (inf, NaN) give NaN outputs by design
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
    net.plan(X.shape[0]).dZ_out[...] = dZ_out
    G = net.backward(X)        # no errstate: the backward pass makes no inf of its own
    return Params(*net.layout.unpack(G))


def predict(mlp: MLP, params: Params, X) -> np.ndarray:
    """Outputs, shape (K, n, n_out), for inputs X (n, n_in)."""
    return forward(mlp, params, X)[0]
