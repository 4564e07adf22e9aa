"""Flat parameter buffers for a population.

All weights and biases of a population of K networks live in one flat 1-D buffer
``P`` (gradients in ``G``, optimizer state and per-variant hyperparameters in buffers
of the same layout), so an optimizer step is a handful of elementwise NumPy calls
whatever the number of layers. Segments, in layer order:

- ``W[0]``, logical ``(K, n_in, h)``, stored ``(n_in, K, h)``: the first layer is one
  matrix product ``X @ W0`` with ``W0`` seen as ``(n_in, K * h)`` (inputs are shared).
- ``W[l]`` for l >= 1, logical and stored ``(K, p, q)``.
- ``b[l]``, logical ``(K, 1, q)``, stored ``(K, q)``.
"""
from __future__ import annotations

import numpy as np


class Layout:
    """Where each parameter of a K-variant population sits in a flat buffer.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths ``(n_in, *hidden, n_out)``.
    bias : bool
    K : int
        Population size.
    """

    def __init__(self, sizes, bias: bool, K: int):
        self.sizes, self.bias, self.K = tuple(sizes), bool(bias), int(K)
        self._w, self._b, off = [], [], 0
        for p, q in zip(self.sizes[:-1], self.sizes[1:]):
            self._w.append((off, p, q))
            off += K * p * q
        if self.bias:
            for q in self.sizes[1:]:
                self._b.append((off, q))
                off += K * q
        self.weights_end = self._w[-1][0] + K * self._w[-1][1] * self._w[-1][2]
        self.size = off

    # --- views into a flat buffer ------------------------------------------------
    def w_store(self, flat, l):
        """Stored view of ``W[l]``: ``(n_in, K * h)`` for l = 0, else ``(K, p, q)``."""
        off, p, q = self._w[l]
        seg = flat[off:off + self.K * p * q]
        return seg.reshape(p, self.K * q) if l == 0 else seg.reshape(self.K, p, q)

    def b_store(self, flat, l):
        """Stored view of ``b[l]``: ``(K, q)``."""
        off, q = self._b[l]
        return flat[off:off + self.K * q].reshape(self.K, q)

    def w_logical(self, flat, l):
        """``W[l]`` as ``(K, p, q)`` (a view; not contiguous for l = 0)."""
        if l == 0:
            _, p, q = self._w[0]
            return self.w_store(flat, 0).reshape(p, self.K, q).transpose(1, 0, 2)
        return self.w_store(flat, l)

    def b_logical(self, flat, l):
        """``b[l]`` as ``(K, 1, q)``."""
        return self.b_store(flat, l)[:, None, :]

    def logical(self, flat):
        """Every segment as a logical ``(K, ...)`` view, weights first."""
        views = [self.w_logical(flat, l) for l in range(len(self._w))]
        return views + [self.b_logical(flat, l) for l in range(len(self._b))]

    # --- conversions ---------------------------------------------------------------
    def pack(self, W, b, dtype):
        """Flat buffer, shape (size,), from ``W[l]`` (K, p, q) and ``b[l]`` (K, 1, q) or None."""
        flat = np.empty(self.size, dtype)
        for view, arr in zip(self.logical(flat), list(W) + list(b or ())):
            view[...] = arr
        return flat

    def unpack(self, flat):
        """``(W, b)`` as tuples of fresh contiguous ``(K, ...)`` arrays (b None without bias)."""
        views = [np.ascontiguousarray(v) for v in self.logical(flat)]
        n_w = len(self._w)
        return tuple(views[:n_w]), (tuple(views[n_w:]) if self.bias else None)

    def expand(self, values, dtype, weights_only=False):
        """Flat buffer holding variant k's ``values[k]`` in every entry of variant k.

        Parameters
        ----------
        values : array_like, shape (K,)
        weights_only : bool
            Zero on the bias entries (for weight decay).
        """
        v = np.asarray(values, dtype=dtype).reshape(self.K, 1, 1)  # (K, 1, 1)
        flat = np.zeros(self.size, dtype)
        for i, view in enumerate(self.logical(flat)):
            if not (weights_only and i >= len(self._w)):
                view[...] = v
        return flat

    def select(self, flat, keep, layout: "Layout"):
        """Re-pack the variants ``keep`` (int indices) of ``flat`` into ``layout`` (K = len(keep))."""
        out = np.empty(layout.size, flat.dtype)
        for dst, src in zip(layout.logical(out), self.logical(flat)):
            dst[...] = src[keep]
        return out
