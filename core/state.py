"""Where a population's training stands: `TrainState`, enough to go on exactly.

``train(mlp, state, ...)`` continues a population from where an earlier call stopped (its
``result.state``): parameters, optimizer state (momentum's velocity, Adam's moments and
``beta**t``), the divergence reference and the epoch count, which fixes the mini-batch order
(``train`` draws one permutation per epoch from ``default_rng(data_seed)``, so it draws the
skipped ones again). The rule: training to epoch ``e1`` and then on to ``e2`` gives every
variant the bits of one call to ``e2`` (tests/core/test_continuation.py).

States are per variant along the population axis, so survivors of several populations can
be selected and concatenated into a new population (successive halving repacks them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .layout import Layout
from .network import Params


@dataclass(frozen=True)
class TrainState:
    """A population after ``epoch`` epochs; K = population size.

    Attributes
    ----------
    epoch : int
        Epochs done, the same for every variant (the next call starts there).
    params : Params
        ``W[l]`` (K, p, q), ``b[l]`` (K, 1, q) or None.
    optimizer : dict of str -> Params
        Each optimizer state array (``OPTIMIZER_STATE[kind]``) in the layout of ``params``;
        empty for sgd and for a population that has not trained yet (zeros then).
    first_loss : ndarray, shape (K,)
        The training loss logged at epoch 0: the divergence reference (NaN before epoch 0).
    diverged_epoch : ndarray, shape (K,) int
        -1, or the log epoch the variant froze at (it stays frozen when continued).
    """

    epoch: int
    params: Params
    optimizer: Mapping[str, Params] = field(default_factory=dict)
    first_loss: np.ndarray | None = None
    diverged_epoch: np.ndarray | None = None

    @property
    def K(self) -> int:
        return self.params.W[0].shape[0]

    def __post_init__(self):
        K = self.K
        if self.first_loss is None:
            object.__setattr__(self, "first_loss", np.full(K, np.nan))
        if self.diverged_epoch is None:
            object.__setattr__(self, "diverged_epoch", np.full(K, -1, dtype=np.int64))
        if self.first_loss.shape != (K,) or self.diverged_epoch.shape != (K,):
            raise ValueError(f"first_loss and diverged_epoch need shape ({K},)")

    @classmethod
    def start(cls, params: Params) -> "TrainState":
        """A population that has not trained yet."""
        return cls(epoch=0, params=params)

    def select(self, keep: Sequence[int] | np.ndarray) -> "TrainState":
        """The variants ``keep`` (int indices, in that order) as a population of their own."""
        keep = np.asarray(keep, dtype=np.intp)
        return TrainState(epoch=self.epoch, params=_take(self.params, keep),
                          optimizer={k: _take(v, keep) for k, v in self.optimizer.items()},
                          first_loss=self.first_loss[keep].copy(),
                          diverged_epoch=self.diverged_epoch[keep].copy())

    @classmethod
    def concat(cls, states: Sequence["TrainState"]) -> "TrainState":
        """One population of every variant of ``states`` (same epoch and optimizer), in order."""
        if not states:
            raise ValueError("nothing to concatenate")
        epochs = {s.epoch for s in states}
        names = {tuple(sorted(s.optimizer)) for s in states}
        if len(epochs) != 1 or len(names) != 1:
            raise ValueError(f"states at epochs {sorted(epochs)} with optimizer state "
                             f"{sorted(names)} cannot form one population")
        return cls(epoch=states[0].epoch, params=_cat([s.params for s in states]),
                   optimizer={k: _cat([s.optimizer[k] for s in states])
                              for k in states[0].optimizer},
                   first_loss=np.concatenate([s.first_loss for s in states]),
                   diverged_epoch=np.concatenate([s.diverged_epoch for s in states]))


def _take(params: Params, keep: np.ndarray) -> Params:
    return Params(tuple(w[keep] for w in params.W),
                  None if params.b is None else tuple(b[keep] for b in params.b))


def _cat(parts: Sequence[Params]) -> Params:
    W = tuple(np.concatenate(ws) for ws in zip(*(p.W for p in parts)))
    b = None if parts[0].b is None else tuple(np.concatenate(bs) for bs in zip(*(p.b for p in parts)))
    return Params(W, b)


def to_flat(layout: Layout, params: Params, dtype) -> np.ndarray:
    """Params (K, ...) as a flat buffer of ``layout``."""
    return layout.pack(params.W, params.b, dtype)


def from_flat(layout: Layout, flat: np.ndarray) -> Params:
    """A flat buffer of ``layout`` as fresh Params (K, ...)."""
    return Params(*layout.unpack(flat))
