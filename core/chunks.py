"""Chunks: contiguous groups of a population's variants, each trained as one tape.

``train`` splits a large population into chunks (of a size ``core.loop`` sets); chunks are
independent, and a chunk shrinks when some of its variants diverge.
"""
from __future__ import annotations

import numpy as np

from .layout import Layout
from .losses import delta_ops
from .network import Net
from .optim import Optimizer


class Chunk:
    """A contiguous group of variants trained together: network kernel and optimizer."""

    def __init__(self, mlp, ids, P, hp, spec, loss, state=None):
        self.mlp, self.ids, self.hp, self.spec, self.loss = mlp, ids, hp, spec, loss
        self.net = Net(mlp, len(ids), P)
        self.opt = Optimizer(spec, hp, self.net.layout, P.dtype, state)
        self._tapes = {}

    def step(self, X, Y, forwarded: bool = False):
        """One gradient step on the batch X (n, n_in), Y (n, n_out): one tape run.

        ``forwarded``: ``self.net.forward(X)`` has just run on these parameters (a log
        epoch's measurement of the full batch), so its buffers already hold this step's
        forward pass: the tape starts after it, with the same numbers.
        """
        n = X.shape[0]
        tape = self._tapes.get(n)
        if tape is None:
            tape = self._tapes[n] = self._tape(n)
        pl = self.net.load(X)
        if Y is not pl.loaded_y:
            np.copyto(pl.Y, Y)
            pl.loaded_y = Y
        for f, a in (tape[len(pl.fwd):] if forwarded else tape):
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
        return Chunk(self.mlp, self.ids[keep], lay.select(self.net.P, keep, new), hp,
                      self.spec, self.loss, state)


def make_chunks(mlp, full: Layout, P0, S0, hp, optimizer, loss, live, per: int) -> list:
    """The live variants (global indices) in chunks of ``per``, each with its rows of the
    flat parameters ``P0`` and optimizer state ``S0`` (global layout ``full``) and of hp."""
    chunks = []
    for s in range(0, len(live), per):
        ids = live[s:s + per]
        lay = Layout(mlp.sizes, mlp.bias, len(ids))
        state = None if S0 is None else {k: full.select(v, ids, lay) for k, v in S0.items()}
        chunks.append(Chunk(mlp, ids, full.select(P0, ids, lay),
                             {k: v[ids] for k, v in hp.items()}, optimizer, loss, state))
    return chunks
