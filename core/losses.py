"""Losses: value per variant and the gradient at the output pre-activation.

Shapes: network output ``out`` is ``(K, n, n_out)``; targets ``Y`` are ``(n, n_out)``
and shared by the population (any array broadcasting against ``out`` works).

Every supported (output activation, loss) pair has the output delta
``dZ = scale * (out - Y) * g``, where ``g = act'(out)`` for squared errors on a
non-identity output and ``g = 1`` for the fused pairs (identity + squared error,
sigmoid + bce, softmax + cross_entropy). ``SUPPORTED_PAIRS`` is that table; anything
else is rejected by :func:`check_output_loss`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .activations import ACTIVATIONS


def _eps(out) -> float:
    return float(np.finfo(out.dtype).eps)


def _sum_per_variant(x, axes=2):
    """Sum of ``x`` (..., *last ``axes`` dims) over its last ``axes`` axes, per variant.

    Copied C-contiguous first so each variant's numbers are one contiguous row of a fixed
    length, summed in an order that depends on that length only: the same bits whether
    the variant is alone or in a pack of any size (an einsum or a sum over strided views of
    the population would pick its order from the population's memory layout).
    """
    x = np.ascontiguousarray(x)
    return np.add.reduce(x.reshape(x.shape[:x.ndim - axes] + (-1,)), axis=-1)


def half_sse(out, Y):
    """``0.5 * sum((out - Y)**2)`` per variant: the loss the article's update descends."""
    r = out - Y
    return 0.5 * _sum_per_variant(r * r)


def mse(out, Y):
    """``mean((out - Y)**2)`` over samples and outputs (the article's ``calculate_loss``)."""
    r = out - Y
    return _sum_per_variant(r * r) / (out.shape[-2] * out.shape[-1])


def bce(out, Y):
    """Binary cross-entropy, mean over samples and outputs; ``out`` clipped to ``[eps, 1-eps]``."""
    p = np.clip(out, _eps(out), 1.0 - _eps(out))
    ll = Y * np.log(p) + (1.0 - Y) * np.log1p(-p)
    return -_sum_per_variant(ll) / (out.shape[-2] * out.shape[-1])


def cross_entropy(out, Y):
    """Categorical cross-entropy of softmax outputs vs one-hot ``Y``, mean over samples."""
    p = np.clip(out, _eps(out), 1.0)
    return -_sum_per_variant(_sum_per_variant(Y * np.log(p), axes=1), axes=1) / out.shape[-2]


class Loss(NamedTuple):
    """One loss.

    Attributes
    ----------
    value : callable ``value(out, Y) -> (K,)``
    scale : callable ``scale(n, n_out) -> float``; ``dL/dout = scale * (out - Y)`` for
        squared errors, and ``dL/dZ = scale * (out - Y)`` for the fused pairs.
    """

    value: Callable
    scale: Callable


LOSSES: dict[str, Loss] = {
    "half_sse": Loss(half_sse, lambda n, o: 1.0),
    "mse": Loss(mse, lambda n, o: 2.0 / (n * o)),
    "bce": Loss(bce, lambda n, o: 1.0 / (n * o)),
    "cross_entropy": Loss(cross_entropy, lambda n, o: 1.0 / n),
}

CLASSIFICATION_LOSSES = frozenset({"bce", "cross_entropy"})
SQUARED_LOSSES = frozenset({"half_sse", "mse"})

#: Pairs whose delta needs no activation derivative: ``dZ = scale * (out - Y)``.
FUSED_PAIRS = frozenset({
    ("identity", "half_sse"), ("identity", "mse"),
    ("sigmoid", "bce"), ("softmax", "cross_entropy"),
})

#: Every (output_activation, loss) pair the gradient code supports.
SUPPORTED_PAIRS = FUSED_PAIRS | frozenset(
    (a, l) for a, act in ACTIVATIONS.items() if act.elementwise for l in SQUARED_LOSSES
)


def check_output_loss(output_activation: str, loss: str) -> None:
    """Raise ValueError unless ``(output_activation, loss)`` is in ``SUPPORTED_PAIRS``."""
    if output_activation not in ACTIVATIONS:
        raise ValueError(f"unknown output activation {output_activation!r}; "
                         f"choose from {sorted(ACTIVATIONS)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
    if (output_activation, loss) not in SUPPORTED_PAIRS:
        ok = sorted(l for a, l in SUPPORTED_PAIRS if a == output_activation)
        raise ValueError(
            f"output activation {output_activation!r} cannot be trained with loss {loss!r}: "
            f"the gradient code supports {output_activation!r} only with {ok} "
            f"(bce needs a sigmoid output, cross_entropy a softmax output)")


def loss_value(loss: str, out, Y) -> np.ndarray:
    """Loss per variant.

    Parameters
    ----------
    loss : str
        A key of ``LOSSES``.
    out : ndarray, shape (K, n, n_out)
    Y : ndarray, shape (n, n_out)

    Returns
    -------
    ndarray, shape (K,)
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
    return LOSSES[loss].value(out, Y)


def delta_ops(loss: str, output_activation: str, out, Y, dZ, tmp, n: int | None = None) -> list:
    """Tape (list of ``(numpy_function, args)``) writing ``dL/dZ_out`` into ``dZ``.

    ``out``, ``dZ`` and the scratch ``tmp`` have one shape, (K, n, n_out) or any
    arrangement of it; ``Y`` broadcasts against them. ``n`` (samples) defaults to
    ``out.shape[-2]``. Run it with ``for f, a in ops: f(*a)``.
    """
    from .activations import deriv_ops
    check_output_loss(output_activation, loss)
    n = out.shape[-2] if n is None else n
    scale = LOSSES[loss].scale(n, out.shape[-1])
    act = ACTIVATIONS[output_activation]
    ops = [(np.subtract, (out, Y, dZ))]                                  # out - Y
    if scale != 1.0:
        ops.append((np.multiply, (dZ, np.asarray(scale, out.dtype), dZ)))
    if (output_activation, loss) not in FUSED_PAIRS and not act.identity_deriv:
        ops += deriv_ops(output_activation, out, tmp) + [(np.multiply, (dZ, tmp, dZ))]  # * act'(out)
    return ops


def output_delta(loss: str, output_activation: str, out, Y, dZ=None, tmp=None):
    """``dL/dZ_out`` for outputs ``out`` (K, n, n_out) and targets ``Y`` (n, n_out).

    Written into ``dZ`` when given (same shape as ``out``; ``tmp`` is optional scratch).
    """
    dZ = np.empty_like(out) if dZ is None else dZ
    tmp = np.empty_like(out) if tmp is None else tmp
    for f, a in delta_ops(loss, output_activation, out, Y, dZ, tmp):
        f(*a)
    return dZ
