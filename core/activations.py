"""Activation functions, each beside its derivative.

Every function works on arrays of any shape; the population code calls them on
activation buffers laid out ``(n, K, features)`` (and on their ``(K, n, features)`` views). ``fn(Z, out)`` may write into ``out`` (which may be
``Z`` itself). Derivatives are written in terms of the forward *output* ``A``
(``sigmoid: A * (1 - A)``), as the seed article does, so the pre-activation never
has to be kept. ``softmax`` is not elementwise: it is only allowed as an output
activation paired with ``cross_entropy`` (see ``core.losses.SUPPORTED_PAIRS``).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np

LEAKY_SLOPE = 0.01


class Activation(NamedTuple):
    """One activation.

    Attributes
    ----------
    fn : callable ``fn(Z, out=None) -> A``
    deriv : callable ``deriv(A, out=None) -> dA/dZ`` from the output, or None
        (softmax: its Jacobian is not diagonal).
    elementwise : bool
        False only for softmax.
    identity_deriv : bool
        True when ``dA/dZ == 1`` (backprop skips the multiply).
    fn_of_neg : callable ``fn_of_neg(negZ, out=None) -> A`` or None
        The activation from the negated pre-activation (sigmoid only; call under
        ``np.errstate``). The network uses it, spelled out by :func:`forward_ops`,
        where ``-Z`` comes for free, saving a pass.
    output_range : (low, high) or None
        The closed interval an elementwise output lies in, None when unbounded: a regression
        target outside it cannot be fitted (the sweep file is rejected).
    """

    fn: Callable
    deriv: Callable | None
    elementwise: bool = True
    identity_deriv: bool = False
    fn_of_neg: Callable | None = None
    output_range: tuple[float, float] | None = None


def _out(Z, out):
    return np.empty_like(Z) if out is None else out


def sigmoid(Z, out=None):
    """Logistic ``1 / (1 + exp(-Z))``, exact and warning-free for any input.

    For ``Z < -log(finfo.max)`` (about -709.8 in float64, -88.7 in float32) ``exp(-Z)``
    is ``+inf`` and the result is exactly ``+0.0`` (the true value is below the smallest
    normal number); no NaN can arise (``1 + inf = inf``, ``1 / inf = 0``) and the
    overflow flag is silenced. Elsewhere the arithmetic is exactly the article's
    ``1 / (1 + np.exp(-x))``. (Capping the argument instead would return denormals such
    as 5.6e-309 for every such Z, slow on many CPUs.) Derivatives are taken from the
    output (``A * (1 - A)``), so an ``inf`` never reaches the backward pass.
    """
    with np.errstate(over="ignore"):
        out = np.negative(Z, out=_out(Z, out))
        return sigmoid_of_neg(out, out=out)


def sigmoid_of_neg(negZ, out=None):
    """Sigmoid from ``negZ = -Z``: ``1 / (1 + exp(negZ))``, three NumPy calls.

    Kernel form: it may overflow to the exact result 0 (see :func:`sigmoid`), so call it
    under ``np.errstate(over="ignore")``, as the network code does. The network gets
    ``-Z`` for free where it can (``(-X) @ W``), saving a pass over the activations.
    """
    out = np.exp(negZ, out=_out(negZ, out))
    out += 1.0
    return np.reciprocal(out, out=out)


def sigmoid_deriv(A, out=None):
    """``A * (1 - A)`` (the article's ``sigmoid_derivative``)."""
    out = _out(A, out)
    np.subtract(1.0, A, out=out)
    return np.multiply(A, out, out=out)


def tanh(Z, out=None):
    return np.tanh(Z, out=_out(Z, out))


def tanh_deriv(A, out=None):
    """``1 - A**2``."""
    out = np.multiply(A, A, out=_out(A, out))
    return np.subtract(1.0, out, out=out)


def relu(Z, out=None):
    return np.maximum(Z, 0.0, out=_out(Z, out))


def relu_deriv(A, out=None):
    """``1`` where ``A > 0`` else ``0``."""
    return np.greater(A, 0.0, out=_out(A, out), casting="unsafe")


def leaky_relu(Z, out=None):
    """``Z`` where positive, else ``LEAKY_SLOPE * Z``."""
    out = _out(Z, out)
    if out is Z:
        Z = Z.copy()
    np.multiply(Z, LEAKY_SLOPE, out=out)
    return np.maximum(Z, out, out=out)


def leaky_relu_deriv(A, out=None):
    """``1`` where ``A > 0`` else ``LEAKY_SLOPE``."""
    out = np.greater(A, 0.0, out=_out(A, out), casting="unsafe")
    out *= 1.0 - LEAKY_SLOPE
    out += LEAKY_SLOPE
    return out


def identity(Z, out=None):
    if out is None:
        return Z.copy()
    if out is not Z:
        out[...] = Z
    return out


def identity_deriv(A, out=None):
    out = _out(A, out)
    out.fill(1.0)
    return out


#: Up to this many classes, softmax takes its row max and row sum one column at a time.
SOFTMAX_COLUMNS_MAX = 16


def softmax(Z, out=None):
    """Softmax over the last axis, shape ``(..., n_classes)``; subtracts the row max."""
    out = _out(Z, out)
    if out is not Z:
        np.copyto(out, Z)
    for f, a in softmax_ops(out):
        f(*a)
    return out


def softmax_ops(Z) -> list:
    """Tape entries applying softmax over the last axis of Z (..., c) in place.

    Up to ``SOFTMAX_COLUMNS_MAX`` classes the row max and the row sum go column by column
    (c - 1 calls on (...) views, the sum in column order): NumPy reduces a short last axis
    one row at a time, several times slower (measured: 1078 x 12 rows of 10 classes).
    """
    c = Z.shape[-1]
    m, s = np.empty(Z.shape[:-1] + (1,), Z.dtype), np.empty(Z.shape[:-1] + (1,), Z.dtype)
    if c > SOFTMAX_COLUMNS_MAX:
        return [(np.maximum.reduce, (Z, -1, None, m[..., 0])), (np.subtract, (Z, m, Z)),
                (np.exp, (Z, Z)), (np.add.reduce, (Z, -1, None, s[..., 0])), (np.divide, (Z, s, Z))]
    larger = functools.partial(np.maximum, out=m)      # (np.maximum takes no positional out)
    ops = [(np.copyto, (m, Z[..., :1]))] + [(larger, (m, Z[..., j:j + 1])) for j in range(1, c)]
    ops += [(np.subtract, (Z, m, Z)), (np.exp, (Z, Z)), (np.copyto, (s, Z[..., :1]))]
    ops += [(np.add, (s, Z[..., j:j + 1], s)) for j in range(1, c)]
    return ops + [(np.divide, (Z, s, Z))]


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(sigmoid, sigmoid_deriv, fn_of_neg=sigmoid_of_neg,
                          output_range=(0.0, 1.0)),
    "tanh": Activation(tanh, tanh_deriv, output_range=(-1.0, 1.0)),
    "relu": Activation(relu, relu_deriv, output_range=(0.0, np.inf)),
    "leaky_relu": Activation(leaky_relu, leaky_relu_deriv),
    "identity": Activation(identity, identity_deriv, identity_deriv=True),
    "softmax": Activation(softmax, None, elementwise=False),
}

def forward_ops(name: str, Z, negated: bool = False) -> list:
    """Tape entries ``(numpy_function, args)`` applying activation ``name`` to Z in place.

    ``negated``: Z holds ``-Z`` (sigmoid only). Sigmoid is spelled out as its three
    ufunc calls so a training step pays no Python function call for it.
    """
    if name == "sigmoid":
        one = np.ones((), Z.dtype)        # a 0-d array converts faster than a Python float
        ops = [] if negated else [(np.negative, (Z, Z))]
        return ops + [(np.exp, (Z, Z)), (np.add, (Z, one, Z)), (np.reciprocal, (Z, Z))]
    if negated:
        raise ValueError(f"{name} has no negated form")
    if name == "softmax":
        return softmax_ops(Z)
    return [] if name == "identity" else [(ACTIVATIONS[name].fn, (Z, Z))]


def deriv_ops(name: str, A, S) -> list:
    """Tape entries writing ``act'(Z)``, from the output ``A``, into ``S``."""
    if name == "sigmoid":
        one = np.ones((), A.dtype)
        return [(np.subtract, (one, A, S)), (np.multiply, (A, S, S))]   # A * (1 - A)
    return [(ACTIVATIONS[name].deriv, (A, S))]


#: Activations allowed in hidden layers (elementwise ones).
HIDDEN_ACTIVATIONS = frozenset(k for k, a in ACTIVATIONS.items() if a.elementwise)
