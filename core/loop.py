"""Training loop for a population: full batch or mini-batches, logging, divergence.

Logging: at epochs ``0, log_every, 2*log_every, ... < epochs`` the loss (and the MSE for
regression, the accuracy for classification) is measured on the whole training set
*before* that epoch's updates, as the article does.

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

from .layout import Layout
from .losses import check_output_loss, delta_ops, loss_value, mse as _mse
from .network import MLP, Net, Params, _check
from .optim import Optimizer, OptimizerSpec

DIVERGENCE_FACTOR = 1e6
CHUNK_ELEMENTS = 1 << 17


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns; K = population size, n_logs = len(log_epochs)."""

    params: Params                      # final parameters (frozen ones for diverged variants)
    log_epochs: np.ndarray              # (n_logs,) int
    loss: np.ndarray                    # (K, n_logs); NaN from divergence on
    mse: np.ndarray | None              # (K, n_logs) regression, else None
    accuracy: np.ndarray | None         # (K, n_logs) classification, else None
    final_loss: np.ndarray              # (K,) on the final params, whole training set
    final_mse: np.ndarray | None        # (K,)
    final_accuracy: np.ndarray | None   # (K,)
    diverged_epoch: np.ndarray          # (K,) int, -1 where it did not diverge

    @property
    def diverged(self) -> np.ndarray:
        """(K,) bool."""
        return self.diverged_epoch >= 0


class _Chunk:
    """A contiguous group of variants trained together: network kernel and optimizer."""

    def __init__(self, mlp, ids, P, hp, spec, loss, state=None):
        self.mlp, self.ids, self.hp, self.spec, self.loss = mlp, ids, hp, spec, loss
        self.net = Net(mlp, len(ids), P)
        self.opt = Optimizer(spec, hp, self.net.layout, P.dtype, state)
        self._tapes = {}

    def step(self, X, Y):
        """One gradient step on the batch X (n, n_in), Y (n, n_out): one tape run."""
        n = X.shape[0]
        tape = self._tapes.get(n)
        if tape is None:
            tape = self._tapes[n] = self._tape(n)
        pl = self.net.load(X)
        if Y is not pl.loaded_y:
            np.copyto(pl.Y, Y)
            pl.loaded_y = Y
        for f, a in tape:
            f(*a)

    def _tape(self, n):
        """forward + output delta + backward + optimizer update, as one list of calls."""
        net, pl = self.net, self.net.plan(n)
        pl.Y, pl.loaded_y = np.empty((n, self.mlp.n_out), net.dtype), None
        out, dZ, tmp = pl.stored                                            # (n, K, n_out)
        delta = delta_ops(self.loss, self.mlp.output_activation, out, pl.Y[:, None, :], dZ, tmp, n=n)
        return pl.fwd + delta + pl.bwd + self.opt.ops(net.P, net.G)

    def shrink(self, keep):
        """The same chunk restricted to local indices ``keep``, or None if empty."""
        if len(keep) == 0:
            return None
        lay = self.net.layout
        new = Layout(lay.sizes, lay.bias, len(keep))
        state = {k: lay.select(v, keep, new) for k, v in self.opt.state.items()}
        hp = {k: v[keep] for k, v in self.hp.items()}
        return _Chunk(self.mlp, self.ids[keep], lay.select(self.net.P, keep, new), hp,
                      self.spec, self.loss, state)


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


def train(mlp: MLP, params: Params, X, Y, *, loss: str = "half_sse",
          optimizer: OptimizerSpec = OptimizerSpec(), epochs: int = 10000,
          batch_size: int | None = None, log_every: int = 100, data_seed: int = 0,
          labels=None, callback: Callable | None = None) -> TrainResult:
    """Train every variant of a population on the same data.

    Parameters
    ----------
    mlp : MLP
    params : Params
        Initial parameters, ``W[l]`` (K, p, q); not modified. Their dtype is the
        training dtype (see ``init_params(dtype=...)``).
    X : ndarray, shape (n, n_in)
    Y : ndarray, shape (n, n_out)
    loss : str
        A key of ``LOSSES``; the pair with ``mlp.output_activation`` must be supported.
    optimizer : OptimizerSpec
        Float fields scalar or per variant (K,).
    epochs : int
    batch_size : int or None
        None (or >= n) for full batch; else mini-batches in an order shared by the
        population: ``np.random.default_rng(data_seed).permutation(n)`` drawn each epoch.
    log_every : int
    data_seed : int
    labels : ndarray (n,) int or None
        Class ids: accuracy is logged (classification). None: MSE is logged.
    callback : callable ``callback(epoch, loss)`` or None
        Called after each log epoch with the logged loss, shape (K,).

    Returns
    -------
    TrainResult
    """
    check_output_loss(mlp.output_activation, loss)
    K, dtype = _check(mlp, params)
    X = np.ascontiguousarray(X, dtype)
    Y = np.ascontiguousarray(Y, dtype)
    n = X.shape[0]
    if X.shape != (n, mlp.n_in) or Y.shape != (n, mlp.n_out):
        raise ValueError(f"X {X.shape} / Y {Y.shape} do not fit n_in={mlp.n_in}, n_out={mlp.n_out}")
    if epochs < 0 or log_every < 1:
        raise ValueError("epochs must be >= 0 and log_every >= 1")
    if labels is not None:
        labels = np.asarray(labels).reshape(n)
    bs = n if batch_size is None or batch_size >= n else int(batch_size)
    if bs < 1:
        raise ValueError("batch_size must be positive")

    hp = optimizer.per_variant(K)
    full = Layout(mlp.sizes, mlp.bias, K)
    P0 = full.pack(params.W, params.b, dtype)
    per = max(1, CHUNK_ELEMENTS // (bs * max(mlp.sizes[1:])))
    chunks = []
    for s in range(0, K, per):
        ids = np.arange(s, min(K, s + per))
        lay = Layout(mlp.sizes, mlp.bias, len(ids))
        chunks.append(_Chunk(mlp, ids, full.select(P0, ids, lay),
                             {k: v[ids] for k, v in hp.items()}, optimizer, loss))

    log_epochs = np.arange(0, epochs, log_every)
    hist = {m: np.full((K, len(log_epochs)), np.nan) for m in ("loss", "mse", "accuracy")}
    final = {m: np.full(K, np.nan) for m in ("loss", "mse", "accuracy")}
    first = np.full(K, np.nan)
    diverged_epoch = np.full(K, -1, dtype=np.int64)
    P_out = np.empty_like(P0)  # final parameters, global layout

    def freeze(chunk, bad):
        """Record the parameters of the chunk's variants ``bad`` (local indices)."""
        lay = chunk.net.layout
        for dst, src in zip(full.logical(P_out), lay.logical(chunk.net.P)):
            dst[chunk.ids[bad]] = src[bad]

    def evaluate(epoch, row):
        """Measure every chunk on the whole training set; freeze the diverged."""
        for i, c in enumerate(chunks):
            out = c.net.forward(X)
            vals = measure(out, Y, loss, labels)
            if epoch == 0:
                first[c.ids] = vals[0]
            limit = DIVERGENCE_FACTOR * np.maximum(first[c.ids], np.finfo(dtype).eps)
            bad = ~(vals[0] <= limit)                   # NaN and inf compare False
            ok = c.ids[~bad]
            for name, v in zip(("loss", "mse", "accuracy"), vals):
                if v is None:
                    continue
                if row is None:
                    final[name][ok] = v[~bad]
                else:
                    hist[name][ok, row] = v[~bad]
            if bad.any():
                diverged_epoch[c.ids[bad]] = epoch
                freeze(c, np.flatnonzero(bad))
                chunks[i] = c.shrink(np.flatnonzero(~bad))
        chunks[:] = [c for c in chunks if c is not None]

    rng = np.random.default_rng(data_seed)
    user_err = np.geterr()                  # the callback runs under the caller's settings
    # sigmoid's exp overflows where its output is exactly 0, and an exploding variant
    # overflows until the divergence check below catches it in its loss
    with np.errstate(all="ignore"):
        for epoch in range(epochs):
            if epoch % log_every == 0:
                evaluate(epoch, epoch // log_every)
                if callback is not None:
                    with np.errstate(**user_err):
                        callback(epoch, hist["loss"][:, epoch // log_every].copy())
            if bs == n:
                for c in chunks:
                    c.step(X, Y)
            else:
                order = rng.permutation(n)
                for s in range(0, n, bs):
                    idx = order[s:s + bs]
                    Xb, Yb = X[idx], Y[idx]
                    for c in chunks:
                        c.step(Xb, Yb)
        evaluate(epochs, None)
    for c in chunks:
        freeze(c, np.arange(len(c.ids)))
    W, b = full.unpack(P_out)
    classify = labels is not None
    return TrainResult(
        params=Params(W, b), log_epochs=log_epochs, loss=hist["loss"],
        mse=None if classify else hist["mse"], accuracy=hist["accuracy"] if classify else None,
        final_loss=final["loss"], final_mse=None if classify else final["mse"],
        final_accuracy=final["accuracy"] if classify else None, diverged_epoch=diverged_epoch)
