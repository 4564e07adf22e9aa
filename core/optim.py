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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .layout import Layout

OPTIMIZERS = ("sgd", "momentum", "adam")
HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay")


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
        Carried-over state (after the population shrank).
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

    def step(self, P, G):
        """Update ``P`` in place from gradient ``G`` (overwritten)."""
        tmp = self.tmp
        if self.wd is not None:
            G += np.multiply(self.wd, P, out=tmp)
        if self.kind == "sgd":
            G *= self.lr
            P -= G
        elif self.kind == "momentum":
            v = self.state["v"]
            v *= self.mu
            G *= self.lr
            v -= G
            if self.nesterov:
                np.multiply(self.mu, v, out=tmp)
                tmp -= G
                P += tmp
            else:
                P += v
        else:
            s, tmp2 = self.state, self.tmp2
            s["m"] *= self.b1
            s["m"] += np.multiply(self.c1, G, out=tmp)
            s["v"] *= self.b2
            np.multiply(G, G, out=tmp)
            s["v"] += np.multiply(self.c2, tmp, out=tmp)
            s["b1t"] *= self.b1
            s["b2t"] *= self.b2
            np.subtract(1.0, s["b2t"], out=tmp)
            np.divide(s["v"], tmp, out=tmp)                # v_hat
            np.sqrt(tmp, out=tmp)
            tmp += self.eps
            np.subtract(1.0, s["b1t"], out=tmp2)
            np.divide(s["m"], tmp2, out=tmp2)              # m_hat
            tmp2 /= tmp
            tmp2 *= self.lr
            P -= tmp2
