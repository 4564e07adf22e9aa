"""Training loop for a population: full batch or mini-batches, logging, divergence.

Logging: at epochs ``0, log_every, 2*log_every, ... < epochs`` the loss (and the MSE for
regression, the accuracy for classification) is measured on the whole training set
*before* that epoch's updates, as the article does, and on the validation set when one is
given. A call that continues a ``TrainState`` logs the multiples of ``log_every`` from the
state's epoch on; every call measures once more on its final parameters.

Divergence: a variant whose logged loss is not finite or exceeds
``DIVERGENCE_FACTOR`` (1e6) times its first logged loss (floored at the dtype's
machine epsilon) is frozen at that log epoch:
it is taken out of the population (its parameters stay as they were), its
``diverged_epoch`` is that epoch, and its history from that log on and its final
metrics are NaN. The check runs at every log epoch and once more on the final
parameters (``diverged_epoch == epochs`` then). The other variants are unaffected.
Gradients are finite for any finite pre-activation (a saturated unit's are exactly 0),
so only a loss that is itself non-finite or exploding freezes a variant.

Large populations are trained in chunks of variants, sized so one activation buffer
holds about ``CHUNK_ELEMENTS`` numbers (measured: larger chunks amortize per-call and
BLAS overhead better than cache-sized ones); chunks are independent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .chunks import make_chunks
from .layout import Layout
from .losses import check_output_loss, loss_value, mse as _mse
from .network import MLP, Params, _check
from .optim import OPTIMIZER_STATE, OptimizerSpec
from .state import TrainState, from_flat, to_flat

DIVERGENCE_FACTOR = 1e6
CHUNK_ELEMENTS = 1 << 17


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns; K = population size, n_logs = len(log_epochs).

    The validation entries are None unless ``train`` was given a validation set; their keys
    are "loss" and "mse" (regression) or "accuracy" (classification).
    """

    params: Params                      # final parameters (frozen ones for diverged variants)
    log_epochs: np.ndarray              # (n_logs,) int
    loss: np.ndarray                    # (K, n_logs); NaN from divergence on
    mse: np.ndarray | None              # (K, n_logs) regression, else None
    accuracy: np.ndarray | None         # (K, n_logs) classification, else None
    final_loss: np.ndarray              # (K,) on the final params, whole training set
    final_mse: np.ndarray | None        # (K,)
    final_accuracy: np.ndarray | None   # (K,)
    diverged_epoch: np.ndarray          # (K,) int, -1 where it did not diverge
    state: TrainState | None = None     # where training stopped: pass it to train to go on
    validation: dict[str, np.ndarray] | None = None        # name -> (K, n_logs)
    final_validation: dict[str, np.ndarray] | None = None  # name -> (K,)

    @property
    def diverged(self) -> np.ndarray:
        """(K,) bool."""
        return self.diverged_epoch >= 0


def predicted_labels(out):
    """Class ids (...,) from outputs (..., n_out): above 0.5 for one sigmoid output (a tie is
    class 0, as in scikit-learn), else the argmax. Every table of predictions uses this rule."""
    return (out[..., 0] > 0.5).astype(np.int64) if out.shape[-1] == 1 else out.argmax(axis=-1)


def measure(out, Y, loss, labels=None):
    """(loss, mse or None, accuracy or None), each (K,), for outputs (K, n, n_out).

    labels : ndarray (n,) of class ids for classification (accuracy), None for regression (MSE).
    """
    lv = loss_value(loss, out, Y)
    if labels is None:
        return lv, _mse(out, Y), None
    return lv, None, (predicted_labels(out) == labels).mean(axis=-1)   # (K,)


def train(mlp: MLP, params: Params | TrainState, X, Y, *, loss: str = "half_sse",
          optimizer: OptimizerSpec = OptimizerSpec(), epochs: int = 10000,
          batch_size: int | None = None, log_every: int = 100, data_seed: int = 0,
          labels=None, validation=None, callback: Callable | None = None) -> TrainResult:
    """Train every variant of a population on the same data, up to epoch ``epochs``.

    Parameters
    ----------
    mlp : MLP
    params : Params or TrainState
        Initial parameters, ``W[l]`` (K, p, q); not modified. Their dtype is the
        training dtype (see ``init_params(dtype=...)``). Or where an earlier call stopped
        (its ``result.state``): training goes on from ``state.epoch`` with the same
        optimizer, data and settings, exactly as one longer call would (see core.state).
    X : ndarray, shape (n, n_in)
    Y : ndarray, shape (n, n_out)
    loss : str
        A key of ``LOSSES``; the pair with ``mlp.output_activation`` must be supported.
    optimizer : OptimizerSpec
        Float fields scalar or per variant (K,).
    epochs : int
        The epoch to stop at, counted from the start (not from ``state.epoch``).
    batch_size : int or None
        None (or >= n) for full batch; else mini-batches in an order shared by the
        population: ``np.random.default_rng(data_seed).permutation(n)`` drawn each epoch.
    log_every : int
    data_seed : int
    labels : ndarray (n,) int or None
        Class ids: accuracy is logged (classification). None: MSE is logged.
    validation : (X_val, Y_val, labels_val) or None
        Measured at every log epoch and at the end, like the training set (``labels_val``
        None for regression). It never affects training or divergence.
    callback : callable ``callback(epoch, loss)`` or None
        Called after each log epoch with the logged loss, shape (K,).

    Returns
    -------
    TrainResult
        Its histories cover the log epochs of this call, ``state.epoch <= epoch < epochs``.
    """
    check_output_loss(mlp.output_activation, loss)
    start = params if isinstance(params, TrainState) else TrainState.start(params)
    K, dtype = _check(mlp, start.params)
    sets = _data_sets(mlp, X, Y, labels, validation, dtype)
    if epochs < start.epoch or log_every < 1:
        raise ValueError(f"epochs must be >= the state's epoch ({start.epoch}) and log_every >= 1")
    n = sets["train"][0].shape[0]
    bs = n if batch_size is None or batch_size >= n else int(batch_size)
    if bs < 1:
        raise ValueError("batch_size must be positive")
    run = _Run(mlp, start, optimizer, loss, sets, bs, log_every, epochs)
    run.train(data_seed, callback)
    return run.result()


def _data_sets(mlp, X, Y, labels, validation, dtype) -> dict:
    """{"train": (X, Y, labels)[, "val": (X_val, Y_val, labels_val)]} as contiguous ``dtype``
    arrays, checked against the network (labels (n,) or None)."""
    X = np.ascontiguousarray(X, dtype)
    Y = np.ascontiguousarray(Y, dtype)
    n = X.shape[0]
    if X.shape != (n, mlp.n_in) or Y.shape != (n, mlp.n_out):
        raise ValueError(f"X {X.shape} / Y {Y.shape} do not fit n_in={mlp.n_in}, n_out={mlp.n_out}")
    if labels is not None:
        labels = np.asarray(labels).reshape(n)
    sets = {"train": (X, Y, labels)}
    if validation is not None:
        Xv, Yv, lv = validation
        Xv, Yv = np.ascontiguousarray(Xv, dtype), np.ascontiguousarray(Yv, dtype)
        if Xv.shape[1:] != (mlp.n_in,) or Yv.shape != (Xv.shape[0], mlp.n_out):
            raise ValueError(f"validation X {Xv.shape} / Y {Yv.shape} do not fit the network")
        sets["val"] = (Xv, Yv, None if lv is None else np.asarray(lv).reshape(len(Xv)))
    return sets


METRICS = ("loss", "mse", "accuracy")


class _Run:
    """One ``train`` call: the population in chunks, the epochs, and what is measured.

    The variants still training live in ``chunks`` (each its own kernel and optimizer);
    a variant that diverges, and every variant at the end, is copied out into ``P_out`` /
    ``S_out`` (global layout) by :meth:`freeze`. Histories are (K, n_logs) per (set, metric).
    """

    def __init__(self, mlp, start: TrainState, optimizer: OptimizerSpec, loss: str, sets: dict,
                 bs: int, log_every: int, epochs: int):
        K, dtype = _check(mlp, start.params)
        self.mlp, self.start, self.loss, self.sets, self.bs = mlp, start, loss, sets, bs
        self.log_every, self.epochs, self.dtype = log_every, epochs, dtype
        self.full = full = Layout(mlp.sizes, mlp.bias, K)
        self.names = OPTIMIZER_STATE[optimizer.kind]
        P0 = to_flat(full, start.params, dtype)
        S0 = ({k: to_flat(full, start.optimizer[k], dtype) for k in self.names}
              if start.optimizer else None)
        per = max(1, CHUNK_ELEMENTS // (bs * max(mlp.sizes[1:])))
        live = np.flatnonzero(start.diverged_epoch < 0)   # frozen variants stay frozen
        self.chunks = make_chunks(mlp, full, P0, S0, optimizer.per_variant(K), optimizer, loss,
                                  live, per)
        self.first_log = -(-start.epoch // log_every) * log_every
        self.log_epochs = np.arange(self.first_log, epochs, log_every)
        self.hist = {(s, m): np.full((K, len(self.log_epochs)), np.nan)
                     for s in sets for m in METRICS}
        self.final = {(s, m): np.full(K, np.nan) for s in sets for m in METRICS}
        self.first = start.first_loss.astype(np.float64, copy=True)
        self.diverged_epoch = start.diverged_epoch.copy()
        self.P_out = P0.copy()  # final parameters, global layout (frozen variants' already in place)
        self.S_out = {k: (S0[k].copy() if S0 is not None else np.zeros_like(P0))
                      for k in self.names}

    def freeze(self, chunk, ids):
        """Record the parameters and optimizer state of the chunk's variants ``ids`` (local)."""
        lay = chunk.net.layout
        pairs = [(self.P_out, chunk.net.P)] + [(self.S_out[k], chunk.opt.state[k])
                                               for k in self.names]
        for out, flat in pairs:
            for dst, src in zip(self.full.logical(out), lay.logical(flat)):
                dst[chunk.ids[ids]] = src[ids]

    def evaluate(self, epoch, row) -> set:
        """Measure every chunk on each data set (into history ``row``, or the final metrics
        when None); freeze the diverged (training loss only).

        Returns the ids of the chunks kept as they were: their last forward pass was on the
        training set (measured last), with the parameters they train on from here.
        """
        chunks, kept = self.chunks, set()
        for i, c in enumerate(chunks):
            vals = {s: measure(c.net.forward(Xs), Ys, self.loss, ls)
                    for s, (Xs, Ys, ls) in reversed(self.sets.items())}
            if epoch == 0:
                self.first[c.ids] = vals["train"][0]
            limit = DIVERGENCE_FACTOR * np.maximum(self.first[c.ids], np.finfo(self.dtype).eps)
            bad = ~(vals["train"][0] <= limit)          # NaN and inf compare False
            ok = c.ids[~bad]
            for s, values in vals.items():
                for name, v in zip(METRICS, values):
                    if v is None:
                        continue
                    if row is None:
                        self.final[s, name][ok] = v[~bad]
                    else:
                        self.hist[s, name][ok, row] = v[~bad]
            if bad.any():
                self.diverged_epoch[c.ids[bad]] = epoch
                self.freeze(c, np.flatnonzero(bad))
                chunks[i] = c.shrink(np.flatnonzero(~bad))
            else:
                kept.add(id(c))
        chunks[:] = [c for c in chunks if c is not None]
        return kept

    def train(self, data_seed, callback):
        """The epochs from the state's to ``epochs``, measuring at each log epoch and at the end."""
        X, Y, _ = self.sets["train"]
        n, bs = X.shape[0], self.bs
        rng = np.random.default_rng(data_seed)
        if bs < n:
            for _ in range(self.start.epoch):   # the orders of the epochs done: the same draws again
                rng.permutation(n)
        user_err = np.geterr()                  # the callback runs under the caller's settings
        # sigmoid's exp overflows where its output is exactly 0, and an exploding variant
        # overflows until the divergence check catches it in its loss
        with np.errstate(all="ignore"):
            for epoch in range(self.start.epoch, self.epochs):
                measured = set()
                if epoch % self.log_every == 0:
                    row = (epoch - self.first_log) // self.log_every
                    measured = self.evaluate(epoch, row)   # their forward pass on X is done
                    if callback is not None:
                        with np.errstate(**user_err):
                            callback(epoch, self.hist["train", "loss"][:, row].copy())
                if bs == n:
                    for c in self.chunks:
                        c.step(X, Y, forwarded=id(c) in measured)
                    continue
                order = rng.permutation(n)
                for s in range(0, n, bs):
                    idx = order[s:s + bs]
                    Xb, Yb = X[idx], Y[idx]
                    for c in self.chunks:
                        c.step(Xb, Yb)
            self.evaluate(self.epochs, None)
        for c in self.chunks:
            self.freeze(c, np.arange(len(c.ids)))

    def result(self) -> TrainResult:
        full, hist, final = self.full, self.hist, self.final
        W, b = full.unpack(self.P_out)
        kind = "accuracy" if self.sets["train"][2] is not None else "mse"
        state = TrainState(epoch=self.epochs, params=Params(W, b),
                           optimizer={k: from_flat(full, self.S_out[k]) for k in self.names},
                           first_loss=self.first, diverged_epoch=self.diverged_epoch)
        val = "val" in self.sets
        return TrainResult(
            params=state.params, log_epochs=self.log_epochs, loss=hist["train", "loss"],
            mse=hist["train", "mse"] if kind == "mse" else None,
            accuracy=hist["train", "accuracy"] if kind == "accuracy" else None,
            final_loss=final["train", "loss"],
            final_mse=final["train", "mse"] if kind == "mse" else None,
            final_accuracy=final["train", "accuracy"] if kind == "accuracy" else None,
            diverged_epoch=self.diverged_epoch, state=state,
            validation={m: hist["val", m] for m in ("loss", kind)} if val else None,
            final_validation={m: final["val", m] for m in ("loss", kind)} if val else None)
