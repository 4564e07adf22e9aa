"""Optimizers over flat population buffers.

Parameters ``P``, gradients ``G`` and every state array share one flat layout
(:class:`core.layout.Layout`), and each per-variant hyperparameter is expanded to that
layout once, so a step is a few elementwise calls for the whole population.

Update rules (``g`` = gradient + ``weight_decay * W``; the L2 term is added to weights
only, not biases):

- sgd:       ``W -= lr * g``
- momentum:  ``v = momentum * v - lr * g``; ``W += v``
  (nesterov: ``W += momentum * v - lr * g``, with the new ``v``)
- adam:      ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g**2``;
  ``W -= lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)``
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from .layout import Layout

# Each optimizer and the constants it reads besides lr and weight_decay (which all read); the
# sweep file's checks (a constant no optimizer of the sweep reads) come from this table.
OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum", "nesterov"),
    "adam": ("beta1", "beta2", "eps"),
}
# The arrays each optimizer carries from step to step (the keys of ``TrainState.optimizer``).
OPTIMIZER_STATE: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("v",),
    "adam": ("m", "v", "b1t", "b2t"),   # moments, and beta1**t, beta2**t for the bias correction
}


@dataclass(frozen=True)
class OptimizerSpec:
    """Optimizer kind and constants; every float is a scalar or one value per variant (K,)."""

    kind: str = "sgd"
    lr: float | Sequence[float] = 0.1
    momentum: float | Sequence[float] = 0.9
    nesterov: bool = False
    beta1: float | Sequence[float] = 0.9
    beta2: float | Sequence[float] = 0.999
    eps: float | Sequence[float] = 1e-8
    weight_decay: float | Sequence[float] = 0.0

    def __post_init__(self):
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.kind!r}; choose from {list(OPTIMIZERS)}")

    def per_variant(self, K: int) -> dict[str, np.ndarray]:
        """Every float hyperparameter as a float64 array of shape (K,)."""
        out = {}
        for name in HYPERPARAMETERS:
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.ndim == 0:
                v = np.full(K, float(v))
            if v.shape != (K,):
                raise ValueError(f"optimizer {name} has {v.size} values for a population of {K}")
            out[name] = v
        return out


# The constants that may differ per variant: OptimizerSpec's float fields, in field order (not
# the kind, not the nesterov switch, which a whole population shares).
HYPERPARAMETERS = tuple(f.name for f in fields(OptimizerSpec) if isinstance(f.default, float))


class Optimizer:
    """Stateful update for one population.

    Parameters
    ----------
    spec : OptimizerSpec
    hp : dict of ndarray (K,)
        From ``spec.per_variant(K)`` (or a subset of its rows).
    layout : Layout
    dtype : numpy dtype
    state : dict of flat ndarray, optional
        Carried-over state (``OPTIMIZER_STATE[kind]`` arrays in ``layout``): after the
        population shrank, or from a ``TrainState``. Default: zeros (and ones for beta**t).
    """

    def __init__(self, spec: OptimizerSpec, hp, layout: Layout, dtype, state=None):
        self.kind, self.nesterov, self.hp = spec.kind, spec.nesterov, hp
        ex = lambda name: layout.expand(hp[name], dtype)  # noqa: E731
        self.lr = ex("lr")
        self.wd = (layout.expand(hp["weight_decay"], dtype, weights_only=True)
                   if np.any(hp["weight_decay"] != 0) else None)
        self.tmp = np.empty(layout.size, dtype)
        zeros = lambda: np.zeros(layout.size, dtype)  # noqa: E731
        if self.kind == "momentum":
            self.mu = ex("momentum")
            self.state = state or {"v": zeros()}
        elif self.kind == "adam":
            self.b1, self.b2, self.eps = ex("beta1"), ex("beta2"), ex("eps")
            self.c1, self.c2 = 1.0 - self.b1, 1.0 - self.b2
            self.tmp2 = np.empty(layout.size, dtype)
            self.state = state or {"m": zeros(), "v": zeros(),
                                   "b1t": np.ones(layout.size, dtype), "b2t": np.ones(layout.size, dtype)}
        else:
            self.state = {}

    def ops(self, P, G) -> list:
        """Tape (list of ``(numpy_function, args)``) updating ``P`` in place from ``G``.

        ``G`` is used as scratch (overwritten).
        """
        mul, sub, add, div = np.multiply, np.subtract, np.add, np.divide
        tmp, ops = self.tmp, []
        if self.wd is not None:                                   # g += weight_decay * W
            ops += [(mul, (self.wd, P, tmp)), (add, (G, tmp, G))]
        if self.kind == "sgd":                                    # W -= lr * g
            ops += [(mul, (G, self.lr, G)), (sub, (P, G, P))]
        elif self.kind == "momentum":                             # v = mu v - lr g
            v = self.state["v"]
            ops += [(mul, (v, self.mu, v)), (mul, (G, self.lr, G)), (sub, (v, G, v))]
            if self.nesterov:                                     # W += mu v - lr g
                ops += [(mul, (self.mu, v, tmp)), (sub, (tmp, G, tmp)), (add, (P, tmp, P))]
            else:                                                 # W += v
                ops.append((add, (P, v, P)))
        else:
            s, tmp2 = self.state, self.tmp2
            m, v, b1t, b2t = s["m"], s["v"], s["b1t"], s["b2t"]
            ops += [(mul, (m, self.b1, m)), (mul, (self.c1, G, tmp)), (add, (m, tmp, m)),   # m
                    (mul, (v, self.b2, v)), (mul, (G, G, tmp)), (mul, (self.c2, tmp, tmp)),
                    (add, (v, tmp, v)),                                                     # v
                    (mul, (b1t, self.b1, b1t)), (mul, (b2t, self.b2, b2t)),               # b**t
                    (sub, (1.0, b2t, tmp)), (div, (v, tmp, tmp)), (np.sqrt, (tmp, tmp)),  # sqrt(v_hat)
                    (add, (tmp, self.eps, tmp)),
                    (sub, (1.0, b1t, tmp2)), (div, (m, tmp2, tmp2)),                      # m_hat
                    (div, (tmp2, tmp, tmp2)), (mul, (tmp2, self.lr, tmp2)), (sub, (P, tmp2, P))]
        return ops
